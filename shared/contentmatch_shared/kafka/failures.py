"""Which handler failures are worth waiting out and which are the record's own fault.

A consumer retries a *transient* failure (a dependency is down or slow) for as long as it takes:
the same record succeeds once the dependency is back, and dead-lettering it would park work that
nothing redrives. A *poison* failure is deterministic (the record is malformed or explicitly
refused) and is dead-lettered at once. Anything else is *unknown*: retried a few times, then
dead-lettered only if the service's dependencies are healthy (during an outage it is the outage's).
"""

from __future__ import annotations

import enum
import errno

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, NodeNotReadyError
from minio.error import InvalidResponseError, S3Error, ServerError
from pydantic import ValidationError
from urllib3.exceptions import HTTPError as Urllib3Error

from contentmatch_shared.events import InvalidEvent


class Failure(enum.Enum):
    TRANSIENT = "transient"
    POISON = "poison"
    UNKNOWN = "unknown"


class PoisonRecord(Exception):
    """Raised by a handler for a record it can never apply (dead-lettered at once)."""


class DependencyUnavailable(Exception):
    """Raised by a handler when something it needs is not there yet (retried until it is)."""


# S3 error codes that say "try again", whatever the HTTP status.
_S3_RETRY_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed"}
)
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ETIMEDOUT,
        errno.EPIPE,
        errno.EADDRNOTAVAIL,
    }
)
_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


def _one(exc: BaseException) -> Failure:
    if isinstance(exc, (InvalidEvent, PoisonRecord, ValidationError)):
        return Failure.POISON
    if isinstance(exc, (DependencyUnavailable, TimeoutError, ConnectionError)):
        return Failure.TRANSIENT
    if isinstance(exc, KafkaError):
        if exc.retriable or isinstance(
            exc, (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError)
        ):
            return Failure.TRANSIENT
        return Failure.UNKNOWN
    if isinstance(exc, ServerError):
        return Failure.TRANSIENT
    if isinstance(exc, InvalidResponseError):
        # A non-XML answer: a proxy or load balancer in front of S3 with a 5xx page.
        code = getattr(exc, "_code", None)
        return Failure.TRANSIENT if code in _TRANSIENT_HTTP else Failure.UNKNOWN
    if isinstance(exc, S3Error):
        status = getattr(exc.response, "status", None)
        if exc.code in _S3_RETRY_CODES or status in _TRANSIENT_HTTP:
            return Failure.TRANSIENT
        return Failure.UNKNOWN
    if isinstance(exc, Urllib3Error):
        return Failure.TRANSIENT  # connection refused, reset, timeouts, retries exhausted
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return Failure.TRANSIENT
    return Failure.UNKNOWN


def classify(exc: BaseException) -> Failure:
    """Classify ``exc``, looking through ``raise ... from`` chains for the underlying cause."""
    seen: set[int] = set()
    current: BaseException | None = exc
    verdict = Failure.UNKNOWN
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _one(current)
        if verdict is not Failure.UNKNOWN:
            return verdict
        current = current.__cause__ or current.__context__
    return verdict
