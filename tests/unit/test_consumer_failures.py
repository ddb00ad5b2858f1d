"""Which handler failures the consumer runner waits out and which it dead-letters."""

from __future__ import annotations

import errno

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NodeNotReadyError,
    NotLeaderForPartitionError,
    RequestTimedOutError,
)
from minio.error import InvalidResponseError, S3Error, ServerError
from pydantic import BaseModel, ValidationError
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError

from contentmatch_shared.events import InvalidEvent
from contentmatch_shared.kafka.failures import (
    DependencyUnavailable,
    Failure,
    PoisonRecord,
    classify,
)
from contentmatch_shared.kafka.runner import backoff_delay


class _Response:
    def __init__(self, status: int) -> None:
        self.status = status


def _s3_error(code: str, status: int) -> S3Error:
    return S3Error(_Response(status), code, "msg", "/b/k", "req", "host")  # type: ignore[arg-type]


class _Model(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _Model(n="x")  # type: ignore[arg-type]
    except ValidationError as exc:
        return exc
    raise AssertionError("no validation error")


TRANSIENT = [
    ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    ConnectionResetError(errno.ECONNRESET, "reset"),
    TimeoutError(),
    OSError(errno.EHOSTUNREACH, "no route"),
    KafkaConnectionError("broker gone"),
    NodeNotReadyError(),
    RequestTimedOutError(),
    KafkaTimeoutError(),
    NotLeaderForPartitionError(),
    ServerError("503 from S3", 503),
    InvalidResponseError(502, "text/html", "<h1>Bad gateway</h1>"),
    _s3_error("ServiceUnavailable", 503),
    _s3_error("SlowDown", 503),
    _s3_error("InternalError", 500),
    NewConnectionError(None, "refused"),  # type: ignore[arg-type]
    MaxRetryError(None, "/b/k", reason=NewConnectionError(None, "refused")),  # type: ignore[arg-type]
    ProtocolError("connection aborted"),
    ReadTimeoutError(None, "/b/k", "read timed out"),  # type: ignore[arg-type]
    DependencyUnavailable("registry not current"),
]
POISON = [
    InvalidEvent("not a valid envelope"),
    PoisonRecord("a work with no hashes"),
    _validation_error(),
]
UNKNOWN = [
    ValueError("a bug"),
    KeyError("hashes"),
    _s3_error("AccessDenied", 403),
    _s3_error("NoSuchKey", 404),
    MessageSizeTooLargeError(),
    InvalidResponseError(400, "text/html", "bad request"),
    OSError(errno.ENOSPC, "disk full"),
    FileNotFoundError(errno.ENOENT, "gone"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_dependency_outages_are_transient(exc: BaseException) -> None:
    assert classify(exc) is Failure.TRANSIENT


@pytest.mark.parametrize("exc", POISON, ids=lambda e: type(e).__name__)
def test_deterministic_failures_are_poison(exc: BaseException) -> None:
    assert classify(exc) is Failure.POISON


@pytest.mark.parametrize("exc", UNKNOWN, ids=lambda e: type(e).__name__)
def test_anything_else_is_unknown(exc: BaseException) -> None:
    assert classify(exc) is Failure.UNKNOWN


def test_the_cause_of_a_wrapped_error_decides() -> None:
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")
        except OSError as inner:
            raise RuntimeError("could not store the status") from inner
    except RuntimeError as outer:
        assert classify(outer) is Failure.TRANSIENT


def test_an_explicit_poison_error_wins_over_its_context() -> None:
    try:
        try:
            raise TimeoutError
        except TimeoutError:
            raise PoisonRecord("refused anyway") from None
    except PoisonRecord as exc:
        assert classify(exc) is Failure.POISON


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    delays = [backoff_delay(n, 0.5, 10.0) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(5.0 <= d <= 10.0 for d in delays[6:])
    assert len({round(backoff_delay(8, 0.5, 10.0), 6) for _ in range(20)}) > 1
