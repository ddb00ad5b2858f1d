"""Each running service's /metrics passes `promtool check metrics` and exposes every metric the
issue asks for, with no ids as label values."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contentmatch_shared.client import ContentMatchClient, Endpoints
from tests.fixtures.images import make_image, to_bytes, transform_bytes
from tests.support.stack import SERVICES, Stack

# Metric families (as the text format names them) every process exposes.
EXPECTED = {
    "cm_http_requests",  # counter: the parser strips _total
    "cm_http_request_duration_seconds",
    "cm_consumer_records_consumed",
    "cm_consumer_records_processed",
    "cm_consumer_records_failed",
    "cm_consumer_records_dead_lettered",
    "cm_consumer_processing_seconds",
    "cm_consumer_lag_records",
    "cm_consumer_last_processed_timestamp_seconds",
    "cm_fingerprint_duration_seconds",
    "cm_index_items",
    "cm_index_memory_bytes",
    "cm_index_last_update_timestamp_seconds",
    "cm_registry_caught_up",
    "cm_matches",
    "cm_reports_created",
}
# Label values that look like ids: uuids, ULIDs, long hex or base64-ish tokens.
ID_LIKE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-|^[0-9A-HJKMNP-TV-Z]{26}$|^[0-9a-f]{16,}$|^[A-Za-z0-9_-]{22,}$"
)


@pytest.fixture(scope="module")
def some_traffic(stack: Stack) -> None:
    """One work and two uploads through the pipeline, so labelled series exist everywhere."""
    endpoints = Endpoints(ingest=stack.url("ingest"), report=stack.url("report"))
    operator = ContentMatchClient(stack.admin_key, endpoints)
    owner = ContentMatchClient(operator.create_key("rightsholder", "expo-label"), endpoints)
    platform = ContentMatchClient(operator.create_key("platform", "expo-tube"), endpoints)
    try:
        work_id = owner.register_work(
            to_bytes(make_image(4242), "PNG"), "w.png", {"title": "Exposition", "kind": "work"}
        )
        assert owner.wait_work(work_id)["status"] == "indexed"
        data, ext = transform_bytes(make_image(4242), "resize_half", seed=1)
        copy = platform.submit_upload(data, f"copy.{ext}")
        stranger = platform.submit_upload(to_bytes(make_image(4343), "JPEG", quality=85), "s.jpg")
        assert platform.wait_upload(copy)["status"] == "matched"
        assert platform.wait_upload(stranger)["status"] == "no_match"
        with pytest.raises(Exception):  # noqa: B017 - any 4xx: it shows up as an error metric
            platform.upload("does-not-exist")
    finally:
        for client in (operator, owner, platform):
            client.close()


@pytest.mark.parametrize("service", SERVICES)
def test_metrics_pass_promtool_and_cover_the_issue(
    stack: Stack, some_traffic: None, service: str
) -> None:
    body = httpx.get(f"{stack.url(service)}/metrics", timeout=10).text
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, text=True
    )
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert set(families) >= EXPECTED, EXPECTED - set(families)
    for family in families.values():
        if not family.name.startswith("cm_"):
            continue
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label in ("le", "quantile"):
                    continue
                assert not ID_LIKE.search(value), f"{sample.name}{{{label}={value!r}}}"


def test_pipeline_series_are_where_the_work_happens(stack: Stack, some_traffic: None) -> None:
    def samples(service: str) -> dict[str, float]:
        body = httpx.get(f"{stack.url(service)}/metrics", timeout=10).text
        return {
            f"{s.name}{sorted(s.labels.items())}": s.value
            for f in text_string_to_metric_families(body)
            for s in f.samples
        }

    fingerprint = samples("fingerprint")
    assert fingerprint["cm_fingerprint_duration_seconds_count[('media_type', 'image')]"] >= 3
    match = samples("match")
    image_items = [
        v for k, v in match.items() if k.startswith("cm_index_items[('media_type', 'image')")
    ]
    assert sum(image_items) >= 1
    assert match["cm_registry_caught_up[]"] == 1
    assert match["cm_matches_total[('kind', 'work'), ('outcome', 'matched')]"] >= 1
    assert match["cm_matches_total[('kind', 'none'), ('outcome', 'no_match')]"] >= 1
    assert any(
        k.startswith("cm_consumer_lag_records[('consumer', 'match-registry')") for k in match
    )
    report = samples("report")
    assert report["cm_reports_created_total[('kind', 'enforcement')]"] >= 1
    ingest = samples("ingest")
    assert any(
        k.startswith(
            "cm_http_requests_total[('method', 'GET'), ('route', '/v1/uploads/{upload_id}')"
        )
        and "('status', '4" in k
        for k in ingest
    ), "errors are counted per route template, not per concrete path"
