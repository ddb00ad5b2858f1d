"""What every service's HTTP side shares: error format, the request guard (credentials, rate and
body limits, before any body is read), RED metrics and the access log, health and metrics routes."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contentmatch_shared import metrics
from contentmatch_shared.availability import UNAVAILABLE_ERRORS, dependency_failure

log = logging.getLogger(__name__)
access_log = logging.getLogger("contentmatch.access")

ReadyCheck = Callable[[], Awaitable[str | None]]  # None when ready, else the reason

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """An error a client sees as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` past the limit; an HTTPException so that FastAPI's body reader
    passes it on as it is instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


def unavailable(dependency: str, retry_after_s: int) -> ApiError:
    return ApiError(
        503,
        "dependency_unavailable",
        f"{dependency} is unavailable; nothing was lost, retry later",
        headers={"Retry-After": str(retry_after_s)},
    )


def unavailable_response(dependency: str, retry_after_s: int) -> JSONResponse:
    return error_response(
        503,
        "dependency_unavailable",
        f"{dependency} is unavailable; nothing was lost, retry later",
        headers={"Retry-After": str(retry_after_s)},
    )


class Guard(Protocol):
    async def admit(self, scope: Scope) -> int:
        """Authenticate and rate-limit from the headers; return the body limit in bytes.
        Raises :class:`ApiError` to refuse."""


class GuardMiddleware:
    """Runs the guard before the app sees the request, then bounds the body: a request is
    refused before a byte of its body is read, and no body is read past its route's limit,
    whatever Content-Length claims."""

    def __init__(self, app: ASGIApp, guard: Guard, retry_after_s: int = 5) -> None:
        self.app = app
        self.guard = guard
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            limit = await self.guard.admit(scope)
        except ApiError as exc:
            await error_response(exc.status, exc.code, exc.message, exc.headers)(
                scope, receive, send
            )
            return
        except Exception as exc:
            if (dependency := dependency_failure(exc)) is None:
                raise
            log.warning("%s unavailable while authenticating: %r", dependency, exc)
            await unavailable_response(dependency, self.retry_after_s)(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await error_response(
                    413, "payload_too_large", f"request body exceeds {limit} bytes"
                )(scope, receive, send)
                return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes: no log line


class RedMetricsMiddleware:
    """Rate, errors and duration per route template (never per concrete path: no ids in labels),
    and one access log line per request: method, route template, status, duration, key id."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            elapsed = time.perf_counter() - started
            metrics.HTTP_REQUESTS.labels(self.service, template, method, str(status)).inc()
            metrics.HTTP_REQUEST_SECONDS.labels(self.service, template, method).observe(elapsed)
            if template not in _QUIET_ROUTES:
                api_key = scope.get("state", {}).get("api_key")
                access_log.info(
                    "%s %s %d %.1fms key=%s",
                    method,
                    template,
                    status,
                    elapsed * 1000,
                    getattr(api_key, "key_id", "-"),
                )


def install_common(
    app: FastAPI,
    service: str,
    ready: ReadyCheck,
    broken: Callable[[], str | None] = lambda: None,
    consumers: Callable[[], dict[str, str]] = dict,
    *,
    guard: Guard | None = None,
    retry_after_s: int = 5,
) -> None:
    """Error handlers, the request guard, RED metrics and the access log, and the three
    unauthenticated endpoints every service has.

    ``/healthz`` fails only when the process is broken (a consumer crashed), never while a
    dependency or the index is still warming up: a cold start must not be killed by its probe.
    A consumer stopped at its dead-letter limit leaves both probes green (the HTTP API still
    serves); their bodies list each consumer's state under ``consumers``.
    """

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return error_response(413, "payload_too_large", str(exc.detail))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first: dict[str, Any] = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}")

    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        if dependency := dependency_failure(exc):
            log.warning("%s unavailable: %r", dependency, exc)
            return unavailable_response(dependency, retry_after_s)
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "an unexpected error occurred")

    # Registered by class, so they answer inside the app (metrics see the 503), not as a crash.
    for failure in UNAVAILABLE_ERRORS:
        app.add_exception_handler(failure, _unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "an unexpected error occurred")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        if reason := broken():
            return error_response(503, "broken", reason)
        return JSONResponse({"status": "ok", "service": service, "consumers": consumers()})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            reason = await ready()
        except Exception as exc:  # a dependency check that blew up is a "not ready"
            reason = f"readiness check failed: {exc}"
        if reason:
            return error_response(503, "not_ready", reason)
        return JSONResponse({"status": "ready", "service": service, "consumers": consumers()})

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    if guard is not None:
        app.add_middleware(GuardMiddleware, guard=guard, retry_after_s=retry_after_s)
    app.add_middleware(RedMetricsMiddleware, service=service)
