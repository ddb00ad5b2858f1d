"""A real Prometheus scrapes the four services while a short pipeline runs through HTTP; its query
API then shows the pipeline moving: uploads processed, matches counted, consumer lag back to 0.

Counters are compared with what Prometheus saw before the pipeline ran, so the test holds on a
stack that earlier tests already used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from contentmatch_shared.client import ContentMatchClient, Endpoints
from tests.fixtures.images import make_image, to_bytes, transform_bytes
from tests.ops.prometheus_server import PROMETHEUS_DIR, PrometheusServer, scrape_config
from tests.support.stack import SERVICES, Stack

N_WORKS = 3
N_STRANGERS = 2
N_UPLOADS = N_WORKS + N_STRANGERS
SEEDS = range(7001, 7001 + N_WORKS)
COPY_TRANSFORMS = ("resize_half", "jpeg_q20", "resize_third")

# name -> PromQL whose value must grow by at least the given amount during the pipeline.
MOVES = {
    "uploads received": ("sum(cm_uploads_received_total)", N_UPLOADS),
    "uploads matched (consumer)": (
        "sum(cm_consumer_records_processed_total"
        '{consumer=~"match(-shard-.*)?", topic="uploads.fingerprinted"})',
        N_UPLOADS,
    ),
    "works and uploads fingerprinted": (
        'sum(cm_fingerprint_duration_seconds_count{media_type="image"})',
        N_WORKS + N_UPLOADS,
    ),
    "matches found": ('sum(cm_matches_total{outcome="matched"})', N_WORKS),
    "no-match outcomes": ('sum(cm_matches_total{outcome="no_match"})', N_STRANGERS),
    "reports created": ('sum(cm_reports_created_total{kind="enforcement"})', N_WORKS),
    "registry records applied": (
        'sum(cm_consumer_records_processed_total{consumer="match-registry"})',
        N_WORKS,
    ),
    "upload POSTs": (
        'sum(cm_http_requests_total{service="ingest", route="/v1/uploads", method="POST"})',
        N_UPLOADS,
    ),
}


@pytest.fixture(scope="module")
def prometheus(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(
        workdir=Path(tmp_path_factory.mktemp("prometheus")), config=scrape_config(stack, "1s")
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _value(prometheus: PrometheusServer, expr: str) -> float:
    return prometheus.scalar(expr) or 0.0


def run_pipeline(stack: Stack) -> dict[str, str]:
    """Registers works, uploads copies and strangers; returns upload id -> final status."""
    endpoints = Endpoints(ingest=stack.url("ingest"), report=stack.url("report"))
    operator = ContentMatchClient(stack.admin_key, endpoints)
    owner = ContentMatchClient(operator.create_key("rightsholder", "scrape-label"), endpoints)
    platform = ContentMatchClient(operator.create_key("platform", "scrape-tube"), endpoints)
    try:
        works = [
            owner.register_work(
                to_bytes(make_image(seed), "PNG"),
                f"scrape{seed}.png",
                {"title": f"Scrape {seed}", "kind": "work", "policy": "track"},
            )
            for seed in SEEDS
        ]
        for work_id in works:
            assert owner.wait_work(work_id)["status"] == "indexed"
        uploads = []
        for seed, name in zip(SEEDS, COPY_TRANSFORMS, strict=True):
            data, ext = transform_bytes(make_image(seed), name, seed=seed)
            uploads.append(platform.submit_upload(data, f"copy{seed}.{ext}"))
        for seed in range(7901, 7901 + N_STRANGERS):
            data = to_bytes(make_image(seed), "JPEG", quality=85)
            uploads.append(platform.submit_upload(data, f"stranger{seed}.jpg"))
        return {u: platform.wait_upload(u)["status"] for u in uploads}
    finally:
        for client in (operator, owner, platform):
            client.close()


def test_prometheus_sees_the_pipeline_move(stack: Stack, prometheus: PrometheusServer) -> None:
    # Every target scraped and up before anything runs.
    prometheus.wait_for(
        "all four targets up",
        lambda: _value(prometheus, 'sum(up{job="contentmatch"})') == len(SERVICES),
        timeout_s=30,
    )
    up = {r["metric"]["service"] for r in prometheus.query('up{job="contentmatch"} == 1')}
    assert up == set(SERVICES)
    before = {name: _value(prometheus, expr) for name, (expr, _) in MOVES.items()}

    statuses = run_pipeline(stack)
    assert sorted(statuses.values()) == sorted(["matched"] * N_WORKS + ["no_match"] * N_STRANGERS)

    def moved() -> dict[str, float]:
        return {
            name: _value(prometheus, expr) - before[name]
            for name, (expr, at_least) in MOVES.items()
            if _value(prometheus, expr) - before[name] < at_least
        }

    prometheus.wait_for("pipeline counters to move", lambda: not moved(), timeout_s=40)

    # Consumer lag (every group, per partition, and the registry follower) drains back to zero.
    prometheus.wait_for(
        "consumer lag back to zero",
        lambda: (
            _value(prometheus, "max(cm_consumer_lag_records)") == 0
            and _value(prometheus, 'count(cm_consumer_lag_records{consumer=~"match(-shard-.*)?"})')
            > 0
        ),
        timeout_s=40,
    )
    groups = {r["metric"]["consumer"] for r in prometheus.query("cm_consumer_lag_records")}
    assert {"ingest-status", "fingerprint", "report", "match-registry"} <= groups
    assert "match" in groups or {"match-shard-0-of-2", "match-merger"} <= groups

    # The recording rule evaluates on its own tick, so it may trail the raw series by one.
    def rule_lag() -> list[dict[str, Any]]:
        return prometheus.query("cm:consumer_lag_records:sum")

    prometheus.wait_for(
        "the lag recording rule back to zero",
        lambda: bool(rule_lag()) and all(float(r["value"][1]) == 0 for r in rule_lag()),
        timeout_s=20,
    )

    # Index size by media type, its age, and a caught-up registry on match.
    assert _value(prometheus, 'sum(cm_index_items{media_type="image"})') >= N_WORKS
    age = _value(prometheus, 'cm:index_age_seconds{media_type="image"}')
    assert 0 <= age < 300
    assert _value(prometheus, 'cm_registry_caught_up{service="match"}') == 1

    # The alert rules loaded and evaluate cleanly; none of the outage alerts fires.
    groups_loaded = prometheus.api("rules")["groups"]
    rules = [r for g in groups_loaded for r in g["rules"]]
    declared = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    assert len(rules) == sum(len(g["rules"]) for g in declared)
    assert all(r["health"] == "ok" for r in rules), rules
    firing = {r["metric"]["alertname"] for r in prometheus.query('ALERTS{alertstate="firing"}')}
    assert not firing & {"ContentmatchServiceDown", "ContentmatchTargetsMissing"}, firing
