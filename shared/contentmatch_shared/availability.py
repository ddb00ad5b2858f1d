"""Telling "a dependency is unavailable" apart from a bug, for a fast 503 instead of a 500."""

from __future__ import annotations

import urllib3.exceptions
from aiokafka.errors import KafkaError
from minio.error import S3Error, ServerError


class DependencyTimeout(TimeoutError):
    """A call to S3 or Kafka did not finish within its bound."""

    def __init__(self, dependency: str, seconds: float) -> None:
        super().__init__(f"{dependency} did not answer within {seconds:g} s")
        self.dependency = dependency


UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    urllib3.exceptions.HTTPError,
    ServerError,
    S3Error,
    KafkaError,
    DependencyTimeout,
)


def dependency_failure(exc: BaseException) -> str | None:
    """Which dependency an exception says is unavailable (``"S3"``, ``"Kafka"``), or None."""
    if isinstance(exc, urllib3.exceptions.HTTPError | ServerError):
        return "S3"
    if isinstance(exc, S3Error):
        status = getattr(exc.response, "status", 0) or 0
        return "S3" if status >= 500 else None
    if isinstance(exc, KafkaError):
        return "Kafka"
    if isinstance(exc, DependencyTimeout):
        return exc.dependency
    return None
