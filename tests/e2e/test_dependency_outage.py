"""S3 or Kafka down or hung: requests answer 503 dependency_unavailable with Retry-After within
their bounds instead of hanging; once the dependency is back the same request succeeds and the
pipeline runs."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Tenants
from tests.fixtures.images import make_image, to_bytes
from tests.support import infra as test_infra
from tests.support.stack import Stack

# Never a hang: the answer must come well within this (the default bounds are seconds).
_CLIENT_TIMEOUT_S = 40.0


def _post_upload(stack: Stack, tenants: Tenants, seed: int) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = httpx.post(
        f"{stack.url('ingest')}/v1/uploads",
        files={"file": ("o.png", to_bytes(make_image(seed), "PNG"))},
        headers=tenants.tube._http.headers,
        timeout=_CLIENT_TIMEOUT_S,
    )
    return response, time.perf_counter() - started


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


@pytest.fixture
def s3_down(infra: test_infra.TestInfra, stack: Stack, tenants: Tenants) -> Iterator[None]:
    # The platform key is used first, so both services hold it in their auth caches.
    httpx.get(f"{stack.url('ingest')}/v1/uploads/upl_x", headers=tenants.tube._http.headers)
    httpx.get(f"{stack.url('report')}/v1/reports", headers=tenants.tube._http.headers)
    infra.script("s3.sh", "stop")
    try:
        yield
    finally:
        infra.script("s3.sh", "start")
        infra.script("s3.sh", "wait")


@pytest.fixture
def kafka_down(infra: test_infra.TestInfra, stack: Stack) -> Iterator[None]:
    infra.script("kafka.sh", "stop")
    try:
        yield
    finally:
        infra.script("kafka.sh", "start")
        infra.script("kafka.sh", "wait")
        stack.wait_ready(*stack.procs)


def test_s3_down_gives_a_fast_503(stack: Stack, tenants: Tenants, s3_down: None) -> None:
    response, seconds = _post_upload(stack, tenants, 8801)
    print(f"POST /v1/uploads with S3 down: {response.status_code} in {seconds:.2f} s")
    _assert_unavailable(response)
    started = time.perf_counter()
    response = httpx.get(
        f"{stack.url('report')}/v1/reports", headers=tenants.tube._http.headers, timeout=40
    )
    seconds = time.perf_counter() - started
    print(f"GET /v1/reports with S3 down: {response.status_code} in {seconds:.2f} s")
    _assert_unavailable(response)
    # A key the service has not seen yet cannot be checked: 503 as well, not 401 or 500.
    fresh = httpx.get(
        f"{stack.url('ingest')}/v1/uploads/upl_x",
        headers={"Authorization": "Bearer cm_plat_" + "x" * 32},
        timeout=_CLIENT_TIMEOUT_S,
    )
    _assert_unavailable(fresh)


def test_kafka_down_gives_a_bounded_503(stack: Stack, tenants: Tenants, kafka_down: None) -> None:
    response, seconds = _post_upload(stack, tenants, 8802)
    print(f"POST /v1/uploads with Kafka down: {response.status_code} in {seconds:.2f} s")
    _assert_unavailable(response)


@contextlib.contextmanager
def _stopped(infra: test_infra.TestInfra, stack: Stack, name: str) -> Iterator[None]:
    """``name``'s process stopped with SIGSTOP, continued afterwards; the stack ready again."""
    pid = infra.pid(name)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
        stack.wait_ready(*stack.procs)


@pytest.fixture
def kafka_hung(infra: test_infra.TestInfra, stack: Stack) -> Iterator[None]:
    """The broker's process stopped (SIGSTOP): connections are accepted, nothing answers."""
    with _stopped(infra, stack, "kafka"):
        yield


@pytest.fixture
def s3_hung(infra: test_infra.TestInfra, stack: Stack, tenants: Tenants) -> Iterator[None]:
    httpx.get(f"{stack.url('ingest')}/v1/uploads/upl_x", headers=tenants.tube._http.headers)
    with _stopped(infra, stack, "s3"):
        yield


def test_a_hung_broker_costs_one_send_bound(
    stack: Stack, tenants: Tenants, kafka_hung: None
) -> None:
    response, seconds = _post_upload(stack, tenants, 8804)
    print(f"POST /v1/uploads with Kafka hung: {response.status_code} in {seconds:.2f} s")
    _assert_unavailable(response)


def test_a_hung_s3_server_costs_one_read_timeout(
    stack: Stack, tenants: Tenants, s3_hung: None
) -> None:
    response, seconds = _post_upload(stack, tenants, 8805)
    print(f"POST /v1/uploads with S3 hung: {response.status_code} in {seconds:.2f} s")
    _assert_unavailable(response)


def test_after_the_outages_uploads_flow_again(stack: Stack, tenants: Tenants) -> None:
    response, _ = _post_upload(stack, tenants, 8803)
    assert response.status_code == 202, response.text
    upload = tenants.tube.wait_upload(response.json()["upload_id"], timeout_s=180)
    assert upload["status"] == "no_match"
