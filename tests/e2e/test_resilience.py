"""Restarts: state survives, the index rebuilds from the registry (the direct Kafka path:
test_platform_trust.py)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Tenants
from tests.fixtures.images import make_image, to_bytes, transform_bytes
from tests.support.stack import Stack

META = {"title": "Resilience photo", "kind": "work", "policy": "monetize"}


@pytest.fixture(scope="module")
def work(tenants: Tenants) -> tuple[int, str]:
    seed = 501
    work_id = tenants.label.register_work(to_bytes(make_image(seed), "PNG"), "r.png", META)
    assert tenants.label.wait_work(work_id)["status"] == "indexed"
    return seed, work_id


def test_a_restarted_match_replica_rebuilds_its_index_from_the_registry(
    stack: Stack, tenants: Tenants, work: tuple[int, str]
) -> None:
    seed, work_id = work
    before = tenants.operator._call("GET", f"{stack.url('match')}/v1/index")
    stack.stop("match")
    # Uploads keep flowing while match is down; they wait in Kafka.
    data, ext = transform_bytes(make_image(seed), "resize_third", seed=seed)
    upload_id = tenants.tube.submit_upload(data, f"during-downtime.{ext}")
    stack.start("match")
    after = tenants.operator._call("GET", f"{stack.url('match')}/v1/index")
    assert after["caught_up"] is True
    assert after["works"] == before["works"]
    assert after["indexes"]["image"]["items"] == before["indexes"]["image"]["items"]
    upload = tenants.tube.wait_upload(upload_id)
    assert upload["status"] == "matched"
    assert upload["matches"][0]["work_id"] == work_id


def test_status_and_reports_survive_restarts_of_ingest_and_report(
    stack: Stack, tenants: Tenants, work: tuple[int, str]
) -> None:
    seed, work_id = work
    data, ext = transform_bytes(make_image(seed), "webp_small", seed=seed)
    upload = tenants.tube.wait_upload(tenants.tube.submit_upload(data, f"x.{ext}"))
    report = tenants.tube.report(upload["report_id"])
    stack.stop("ingest", "report")
    stack.start("ingest", "report")
    assert tenants.tube.upload(upload["upload_id"]) == upload
    assert tenants.label.work(work_id)["status"] == "indexed"
    assert tenants.tube.report(upload["report_id"]) == report
