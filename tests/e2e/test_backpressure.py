"""Backpressure: more offered than the pipeline processes gets 503 with Retry-After, and every
upload that was accepted completes (ingest restarted with a small backlog limit)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.conftest import Tenants
from tests.fixtures.images import make_image, to_bytes
from tests.support.stack import Stack

SEEDS = range(8500, 8560)
SMALL_BACKLOG = {
    "CM_INGEST_MAX_BACKLOG": "4",
    "CM_INGEST_BACKLOG_REFRESH_S": "0.2",
    "CM_BACKLOG_RETRY_AFTER_S": "1",
}


@pytest.fixture
def small_backlog(stack: Stack) -> Iterator[None]:
    saved = dict(stack.env_overrides)
    stack.env_overrides.update(SMALL_BACKLOG)
    stack.stop("ingest")
    stack.start("ingest")
    try:
        yield
    finally:
        stack.env_overrides.clear()
        stack.env_overrides.update(saved)
        stack.stop("ingest")
        stack.start("ingest")


def test_uploads_beyond_the_backlog_are_refused_with_retry_after_and_none_accepted_is_lost(
    stack: Stack, tenants: Tenants, small_backlog: None
) -> None:
    key = tenants.operator.create_key("platform", "tube")
    payloads = [to_bytes(make_image(seed, (480, 360)), "JPEG") for seed in SEEDS]
    accepted: list[str] = []
    refused: list[httpx.Response] = []
    lock = threading.Lock()
    stop = threading.Event()

    def post(i: int) -> None:
        if stop.is_set():
            return
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            r = http.post(
                f"{stack.url('ingest')}/v1/uploads", files={"file": (f"bp-{i}.jpg", payloads[i])}
            )
        with lock:
            if r.status_code == 202:
                accepted.append(r.json()["upload_id"])
            else:
                assert r.status_code == 503, r.text
                refused.append(r)
                if len(refused) >= 5:
                    stop.set()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(len(payloads))))

    assert accepted, "nothing was accepted"
    assert refused, f"{len(accepted)} uploads offered at once were all accepted"
    for r in refused:
        assert r.json()["error"]["code"] == "pipeline_backlogged"
        assert r.headers["retry-after"] == "1"

    # A client that honours Retry-After gets in once the pipeline caught up.
    deadline = time.monotonic() + 120
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        while True:
            r = http.post(
                f"{stack.url('ingest')}/v1/uploads", files={"file": ("late.jpg", payloads[0])}
            )
            if r.status_code == 202:
                accepted.append(r.json()["upload_id"])
                break
            assert r.status_code == 503 and time.monotonic() < deadline, r.text
            time.sleep(float(r.headers["retry-after"]))

    for upload_id in accepted:
        assert tenants.tube.wait_upload(upload_id, timeout_s=180)["status"] in {
            "matched",
            "no_match",
        }

    exposition = httpx.get(f"{stack.url('ingest')}/metrics").text
    refusals = re.search(r'^cm_uploads_refused_total\{reason="backlog"\} (\S+)$', exposition, re.M)
    assert refusals and float(refusals.group(1)) >= len(refused)
    assert re.search(r'^cm_pipeline_backlog_records\{consumer="fingerprint"\} ', exposition, re.M)
    assert re.search(r"^cm_pipeline_backlog_limit_records 4\.0$", exposition, re.M)
    assert re.search(r'^cm_upload_verdict_seconds_count\{outcome="no_match"\} ', exposition, re.M)
