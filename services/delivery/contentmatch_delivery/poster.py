"""One delivery attempt: POST the signed body to the webhook's URL, safely.

The URL is checked again (targets.py) and the request connects to the checked address, with the
URL's host in ``Host`` and in TLS SNI (certificates are verified against the name). No redirect is
followed, no proxy from the environment is used, the whole attempt has one deadline, and at most
``webhook_max_concurrency_per_receiver`` requests per host run at once in this process. After a
timeout the host is paused for a while (its attempts fail at once as ``deferred`` and are retried
on schedule), so one slow receiver costs the others at most one timeout per pause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import httpx

from contentmatch_delivery import targets
from contentmatch_shared import metrics
from contentmatch_shared.settings import Settings

_EXCERPT_BYTES = 1024
_MAX_ADDRESSES = 4  # addresses of one host tried per attempt
USER_AGENT = "contentmatch-webhooks/1"
# httpx logs every request with its full URL at INFO: the delivery log and metrics say enough.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True)
class AttemptResult:
    outcome: str  # delivered, http_error, timeout, connection_error, refused, deferred
    status_code: int | None = None
    error: str | None = None
    duration_ms: float | None = None
    response_excerpt: str | None = None

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


class WebhookPoster:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(
                settings.webhook_timeout_s, connect=settings.webhook_connect_timeout_s
            ),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            headers={"User-Agent": USER_AGENT},
        )
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._paused_until: dict[str, float] = {}

    async def close(self) -> None:
        await self._client.aclose()

    def _slot(self, host: str) -> asyncio.Semaphore:
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = asyncio.Semaphore(
                self._settings.webhook_max_concurrency_per_receiver
            )
        return slot

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        try:
            target = await targets.check(
                url,
                allow_private=self._settings.webhook_allow_private_urls,
                require_https=self._settings.environment == "production",
            )
        except targets.TargetRefused as exc:
            return AttemptResult("refused", error=f"{exc.code}: {exc.message}")
        receiver = f"{target.host}:{target.port}"
        paused = self._paused_until.get(receiver, 0.0) - time.monotonic()
        if paused > 0:
            return AttemptResult(
                "deferred", error=f"receiver timed out recently; paused for {paused:.0f} s more"
            )
        default_port = 443 if target.scheme == "https" else 80
        host_header = f"[{target.host}]" if ":" in target.host else target.host
        if target.port != default_port:
            host_header += f":{target.port}"
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        started = time.perf_counter()
        async with self._slot(receiver):
            try:
                async with asyncio.timeout(self._settings.webhook_timeout_s):
                    # Every checked address in turn while none accepts the connection (a host
                    # with an IPv6 address this network cannot reach, say); one deadline for all.
                    for index, address in enumerate(target.addresses[:_MAX_ADDRESSES]):
                        try:
                            status, excerpt = await self._send(
                                httpx.URL(url).copy_with(host=str(address)),
                                body,
                                {**headers, "Host": host_header},
                                extensions,
                            )
                            break
                        except httpx.ConnectError:
                            if index + 1 >= min(len(target.addresses), _MAX_ADDRESSES):
                                raise
            except (TimeoutError, httpx.TimeoutException):
                self._paused_until[receiver] = (
                    time.monotonic() + self._settings.webhook_receiver_pause_s
                )
                return AttemptResult(
                    "timeout",
                    error=f"no answer within {self._settings.webhook_timeout_s:.1f} s",
                    duration_ms=_ms(started),
                )
            except httpx.HTTPError as exc:
                return AttemptResult(
                    "connection_error", error=f"{type(exc).__name__}: {exc}"[:300],
                    duration_ms=_ms(started),
                )  # fmt: skip
            finally:
                metrics.WEBHOOK_ATTEMPT_SECONDS.observe(time.perf_counter() - started)
        text = excerpt[:_EXCERPT_BYTES].decode("utf-8", errors="replace")
        if 200 <= status < 300:
            return AttemptResult(
                "delivered", status, duration_ms=_ms(started), response_excerpt=text or None
            )
        why = (
            "redirects are not followed"
            if 300 <= status < 400
            else f"the receiver answered {status}"
        )
        return AttemptResult(
            "http_error", status, error=why, duration_ms=_ms(started), response_excerpt=text or None
        )

    async def _send(
        self, pinned: httpx.URL, body: bytes, headers: dict[str, str], extensions: dict[str, str]
    ) -> tuple[int, bytes]:
        """POST to one address: the status and the first bytes of the answer."""
        async with self._client.stream(
            "POST", pinned, content=body, headers=headers, extensions=extensions
        ) as response:
            excerpt = b""
            async for chunk in response.aiter_bytes():
                excerpt += chunk
                if len(excerpt) >= _EXCERPT_BYTES:
                    break
            return response.status_code, excerpt


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
