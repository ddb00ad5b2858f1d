"""The webhook signature: HMAC-SHA256 over ``<timestamp>.<body>``, sent as
``ContentMatch-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`` (the scheme Stripe uses).

One ``v1`` per secret that is valid now: during a secret rotation's grace period the old secret
signs too, so a receiver holding either one verifies. A receiver checks that ``t`` is recent
(replays of a captured request are refused) and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

SIGNATURE_HEADER = "ContentMatch-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300
_SECRET_PREFIX = "whsec_"


class SignatureError(Exception):
    """The signature header is missing, malformed, stale, or matches no secret."""


def new_secret() -> str:
    return _SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets_now: Iterable[str], timestamp: int, body: bytes) -> str:
    parts = [f"t={timestamp}"] + [f"{SCHEME}={sign(s, timestamp, body)}" for s in secrets_now]
    return ",".join(parts)


def verify(
    header: str | None,
    body: bytes,
    secret: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a received delivery; return its timestamp, or raise :class:`SignatureError`."""
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("the header needs t=<unix seconds> and at least one v1=<hex>")
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise SignatureError(f"timestamp {timestamp} is outside the {tolerance_s:.0f} s tolerance")
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("no v1 signature matches this secret")
    return timestamp
