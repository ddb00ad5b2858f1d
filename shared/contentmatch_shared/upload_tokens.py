"""Upload tokens: what the services trust about an ``upload.submitted`` event.

Ingest issues a token for every upload it knows of: for its own HTTP uploads, and for the
direct uploads a platform asks for (``POST /v1/uploads/direct``, with a presigned PUT into
``uploads/<tenant>/<upload_id>``). The token is an HMAC over the tenant, the upload id, the
object's bucket and key and an expiry, with a server secret only the services hold. The
consumers of ``uploads.submitted`` believe nothing else in the event: :func:`verify_upload`
refuses malformed ids, objects outside the platform's prefix or the media bucket, and tokens
that are missing, tampered, issued for another upload or tenant, or expired; the sha256 and size
of a direct upload are computed by the fingerprint service from the bytes it reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contentmatch_shared.events import UploadSubmitted
from contentmatch_shared.ids import InvalidId, check_id, check_tenant
from contentmatch_shared.settings import Settings

_VERSION = "v1"


class UploadRefused(Exception):
    """An ``upload.submitted`` event the services will not process."""

    def __init__(self, code: str, message: str, *, authentic: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        # Authentic: tenant and upload id are proven (only the expiry failed), so the upload's
        # status may say why; otherwise nothing is recorded under ids a publisher chose.
        self.authentic = authentic


# Refusal codes whose event proved nothing: no status is recorded under its ids.
UNAUTHENTIC_REFUSALS = frozenset(
    {"invalid_id", "object_outside_prefix", "upload_token_invalid", "upload_token_mismatch"}
)


def published_at(record: Any) -> float:
    """When the record was published: the broker's append time on ``uploads.submitted``
    (LogAppendTime). On a topic created before it used that, the producer's own timestamp:
    a publisher could backdate only the tokens of its own uploads, and a consumer catching up
    after an outage must not refuse what was published in time."""
    if getattr(record, "timestamp", None):
        return float(record.timestamp) / 1000.0
    return time.time()


@dataclass(frozen=True)
class UploadGrant:
    tenant: str
    upload_id: str
    bucket: str
    key: str
    expires_at: int  # unix seconds
    sha256: str | None = None  # known when ingest stored the bytes itself
    size: int | None = None


def upload_key(tenant: str, upload_id: str) -> str:
    """Where a platform's object lives: its prefix is ``uploads/<tenant>/``."""
    return f"uploads/{tenant}/{upload_id}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> bytes:
    return hmac.new(secret, f"{_VERSION}.{body}".encode(), hashlib.sha256).digest()


def sign_grant(grant: UploadGrant, secret: bytes) -> str:
    body = _b64(json.dumps(asdict(grant), sort_keys=True, separators=(",", ":")).encode())
    return f"{_VERSION}.{body}.{_b64(_mac(secret, body))}"


def read_grant(token: object, secret: bytes) -> UploadGrant:
    """The grant a token carries, if the services' secret signed it (expiry not checked)."""
    if not isinstance(token, str) or len(token) > 4096:
        raise UploadRefused("upload_token_invalid", "no upload token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise UploadRefused("upload_token_invalid", "the upload token is not a v1 token")
    try:
        mac = _unb64(parts[2])
        body = json.loads(_unb64(parts[1]))
        grant = UploadGrant(**body)
    except (ValueError, TypeError) as exc:
        raise UploadRefused("upload_token_invalid", "the upload token is malformed") from exc
    if not hmac.compare_digest(mac, _mac(secret, parts[1])):
        raise UploadRefused("upload_token_invalid", "the upload token's signature is wrong")
    return grant


def new_grant(
    settings: Settings,
    tenant: str,
    upload_id: str,
    *,
    key: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    now: float | None = None,
) -> UploadGrant:
    issued = int(now if now is not None else time.time())
    return UploadGrant(
        tenant=tenant,
        upload_id=upload_id,
        bucket=settings.bucket_media,
        key=key or upload_key(tenant, upload_id),
        expires_at=issued + int(settings.upload_token_ttl_s),
        sha256=sha256,
        size=size,
    )


def verify_upload(
    event: UploadSubmitted, settings: Settings, secret: bytes, *, at: float
) -> UploadSubmitted:
    """The event as the services may believe it, or :class:`UploadRefused`.

    ``at`` is when the event was published (the broker's append time on ``uploads.submitted``),
    so a consumer catching up after an outage does not refuse what was in time. The object's
    sha256 and size are the token's (ingest measured them) or unknown.
    """
    try:
        check_id(event.upload_id, "upl")
        check_tenant(event.tenant)
    except InvalidId as exc:
        raise UploadRefused("invalid_id", str(exc)) from exc
    obj = event.object
    prefix = f"uploads/{event.tenant}/"
    if obj.bucket != settings.bucket_media or not obj.key.startswith(prefix) or ".." in obj.key:
        raise UploadRefused(
            "object_outside_prefix",
            f"s3://{obj.bucket}/{obj.key[:200]} is not under s3://{settings.bucket_media}/{prefix}",
        )
    grant = read_grant(event.upload_token, secret)
    claimed = (event.tenant, event.upload_id, obj.bucket, obj.key)
    if (grant.tenant, grant.upload_id, grant.bucket, grant.key) != claimed:
        raise UploadRefused(
            "upload_token_mismatch",
            "the upload token was issued for another tenant, upload or object",
        )
    if at > grant.expires_at:
        raise UploadRefused(
            "upload_token_expired",
            f"the upload token expired {int(at - grant.expires_at)} s before it was published",
            authentic=True,
        )
    return event.model_copy(
        update={"object": obj.model_copy(update={"sha256": grant.sha256, "size": grant.size})}
    )


def load_secret(settings: Settings) -> bytes:
    """The services' shared secret: the setting, or a file (generated once in development)."""
    if settings.upload_token_secret:
        return settings.upload_token_secret.encode()
    path = Path(settings.upload_token_secret_file)
    if not path.exists():
        if settings.environment == "production":
            raise RuntimeError("CM_UPLOAD_TOKEN_SECRET (or _FILE) must be set in production")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: services starting together agree on the first one written.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
        except FileExistsError:
            pass
    for _ in range(50):
        secret = path.read_text().strip()
        if secret:
            return secret.encode()
        time.sleep(0.1)  # another process created it and is writing it
    raise RuntimeError(f"{path} is empty")
