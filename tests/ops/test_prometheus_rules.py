"""The alert rules: `promtool check rules` is clean and `promtool test rules` passes; every alert
the issue names exists and has a unit test; the Grafana dashboard only queries real metrics."""

from __future__ import annotations

import json
import re
import subprocess

import yaml
from prometheus_client.metrics import MetricWrapperBase

from contentmatch_shared import metrics
from tests.support.infra import REPO

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "contentmatch-pipeline.json"
# What the issue asks alerts for -> the alert that covers it.
REQUIRED_ALERTS = {
    "consumer lag growing": "ContentmatchConsumerLagGrowing",
    "DLQ non-empty": "ContentmatchDLQNotEmpty",
    "records dead-lettered": "ContentmatchDeadLettered",
    "consumer stopped at its DLQ limit": "ContentmatchConsumerStopped",
    "error ratio": "ContentmatchHTTPErrorRatioHigh",
    "index stale": "ContentmatchIndexStale",
    "service down": "ContentmatchServiceDown",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120
    )


def alerts() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_promtool_check_rules_is_clean() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists_and_is_unit_tested() -> None:
    names = {a["alert"] for a in alerts()}
    assert set(REQUIRED_ALERTS.values()) <= names
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts.test.yml").read_text())["tests"]
    tested = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    untested = names - tested - {"ContentmatchTargetsMissing"}  # absent(): nothing to feed it
    assert not untested, f"alerts without a firing unit test: {untested}"
    for alert in alerts():
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert {"summary", "description"} <= set(alert["annotations"]), alert["alert"]


def _declared_metric_names() -> set[str]:
    names = set()
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        for family in value.describe():
            base = family.name
            names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"}
    return names


def test_rules_and_dashboard_query_only_declared_metrics() -> None:
    """A renamed metric must not leave an alert or a panel silently empty."""
    known = _declared_metric_names()
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    exprs += [t["expr"] for p in panels for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\b(cm_[a-z_]+)", e)}
    assert used, "no cm_ metric referenced at all"
    assert used <= known, used - known
    for expr in exprs:
        for name in re.findall(r"\b(cm:[a-z_:0-9]+)", expr):
            assert name in recorded, name


def test_grafana_dashboard_is_a_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    datasource_vars = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert datasource_vars, "the Prometheus data source is a variable, not a hard-coded uid"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["gridPos"]["w"] > 0 and panel["gridPos"]["h"] > 0
