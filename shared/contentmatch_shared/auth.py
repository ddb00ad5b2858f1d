"""API keys: who is calling, for which tenant, in which role, and whether the key still holds.

Keys live in the state bucket under ``keys/<sha256(secret)>.json`` (the secret itself is never
stored), so every service validates the same keys. A key's public id is the first 16 hex digits
of that digest, so a key is found by id with one prefix listing, and records written before ids
were used (``key_id``, ``role``, ``tenant``, ``created_at``) read unchanged. The bootstrap operator
key comes from ``CM_ADMIN_KEY`` and is not stored.

Credentials are checked from the headers before any body is read (:class:`RequestGuard`, run by
the HTTP middleware): a malformed one costs no storage request, an unknown one at most one per
``auth_negative_cache_ttl_s``, and both caches are bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Scope

from contentmatch_shared.audit import AuditLog
from contentmatch_shared.bounded_cache import TtlLru
from contentmatch_shared.events import utcnow
from contentmatch_shared.http import ApiError
from contentmatch_shared.ids import TENANT_MAX, TENANT_PATTERN
from contentmatch_shared.rate_limits import DailyQuotas, Limit, TokenBuckets, retry_after_header
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore

log = logging.getLogger(__name__)

Role = Literal["operator", "rightsholder", "platform", "enforcement"]
ROLES: tuple[str, ...] = get_args(Role)
ADMIN_KEY_ID = "admin"
KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
# What ``KeyStore.create`` mints (and always has): anything else is unknown without a lookup.
SECRET_PATTERN = re.compile(r"^cm_[a-z]{4}_[A-Za-z0-9_\-]{32}$")
_MAX_HEADER_BYTES = 1024
_MAX_SECRET_CHARS = 512


Tenant = Annotated[str, Field(min_length=1, max_length=TENANT_MAX, pattern=TENANT_PATTERN)]


class ApiKey(BaseModel):
    key_id: str
    role: Role
    tenant: Tenant


class KeyRecord(ApiKey):
    """A stored key. Every field past ``tenant`` is optional: older records have none of them."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    rotated_to: str | None = None
    rotated_from: str | None = None

    def status(self, now: datetime) -> Literal["active", "expired", "revoked"]:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def identity(self) -> ApiKey:
        return ApiKey(key_id=self.key_id, role=self.role, tenant=self.tenant)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


def parse_authorization(raw: bytes | None) -> str:
    """The bearer secret from a raw ``Authorization`` header, or a 401 saying what is wrong."""
    if not raw or not raw.strip():
        raise _unauthorized("unauthorized", "missing bearer token in the Authorization header")
    if len(raw) > _MAX_HEADER_BYTES:
        raise _unauthorized("malformed_credentials", "the Authorization header is too long")
    try:
        header = raw.decode("ascii")
    except UnicodeDecodeError:
        raise _unauthorized(
            "malformed_credentials", "the Authorization header must be ASCII"
        ) from None
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise _unauthorized(
            "malformed_credentials", "use the Bearer scheme: 'Authorization: Bearer <key>'"
        )
    secret = secret.strip()
    if not secret:
        raise _unauthorized("unauthorized", "missing bearer token in the Authorization header")
    if len(secret) > _MAX_SECRET_CHARS or not all("!" <= c <= "~" for c in secret):
        raise _unauthorized("malformed_credentials", "the bearer token is not a valid key")
    return secret


class KeyStore:
    def __init__(self, store: ObjectStore, settings: Settings, audit: AuditLog) -> None:
        self._store = store
        self._bucket = store.settings.bucket_state
        self._admin_key = settings.admin_key.encode()
        self._settings = settings
        self.audit = audit
        self._known: TtlLru[KeyRecord] = TtlLru(settings.auth_cache_size, settings.auth_cache_ttl_s)
        self._unknown: TtlLru[bool] = TtlLru(
            settings.auth_negative_cache_size, settings.auth_negative_cache_ttl_s
        )
        self._used: TtlLru[bool] = TtlLru(settings.auth_cache_size, 24 * 3600.0)
        self._failures = TokenBuckets()
        self._failure_limit = Limit(settings.auth_failures_per_s, settings.auth_failures_burst)
        self._background: set[asyncio.Task[None]] = set()

    @staticmethod
    def _object_key(digest: str) -> str:
        return f"keys/{digest}.json"

    # -- authentication ----------------------------------------------------------------------
    async def authenticate(self, secret: str, client: str | None = None) -> ApiKey:
        """The key behind ``secret``; 401 when unknown, revoked or expired.

        Only a well-formed secret that is in neither cache costs a storage lookup; a ``client``
        (address) whose lookups keep finding nothing is refused further ones for a while (429)."""
        if self._admin_key and hmac.compare_digest(secret.encode(), self._admin_key):
            return ApiKey(key_id=ADMIN_KEY_ID, role="operator", tenant="operator")
        if not SECRET_PATTERN.match(secret):
            raise _unauthorized("unauthorized", "unknown API key")
        digest = _digest(secret)
        record = self._known.get(digest)
        if record is None:
            if self._unknown.get(digest):
                raise _unauthorized("unauthorized", "unknown API key")
            failures = self._failures
            if client and (wait := failures.take(client, self._failure_limit, only_look=True)):
                raise ApiError(
                    429, "too_many_failed_authentications",
                    "too many unknown keys from this address; retry later",
                    headers={"Retry-After": retry_after_header(wait)},
                )  # fmt: skip
            raw = await self._store.get_json(self._bucket, self._object_key(digest))
            if raw is None:
                self._unknown.put(digest, True)
                if client:
                    failures.take(client, self._failure_limit)
                raise _unauthorized("unauthorized", "unknown API key")
            record = KeyRecord.model_validate(raw)
            self._known.put(digest, record)
        now = utcnow()
        status = record.status(now)
        if status == "revoked":
            raise _unauthorized("key_revoked", f"the API key {record.key_id} was revoked")
        if status == "expired":
            why = " (replaced by a rotation)" if record.rotated_to else ""
            raise _unauthorized("key_expired", f"the API key {record.key_id} expired{why}")
        self._note_use(record, now)
        return record.identity()

    def _note_use(self, record: KeyRecord, now: datetime) -> None:
        """One audit event per key and UTC day (first use), written off the request path."""
        day = now.date().isoformat()
        if self._used.get(f"{record.key_id}/{day}"):
            return
        self._used.put(f"{record.key_id}/{day}", True)
        task = asyncio.create_task(
            self.audit.record(
                "key_used",
                actor=record.identity(),
                subject={"key_id": record.key_id},
                dedupe=f"{record.key_id}/{day}",
                first_wins=True,
            )
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- lifecycle ---------------------------------------------------------------------------
    async def create(
        self,
        role: Role,
        tenant: str,
        *,
        created_by: ApiKey,
        expires_at: datetime | None = None,
        name: str | None = None,
        rotated_from: str | None = None,
    ) -> tuple[str, KeyRecord]:
        secret = f"cm_{role[:4]}_{secrets.token_urlsafe(24)}"
        digest = _digest(secret)
        record = KeyRecord(
            key_id=digest[:16],
            role=role,
            tenant=tenant,
            name=name,
            created_at=utcnow(),
            created_by=created_by.key_id,
            expires_at=expires_at,
            rotated_from=rotated_from,
        )
        await self._put(digest, record)
        await self.audit.record(
            "key_created",
            actor=created_by,
            subject={"key_id": record.key_id, "role": role, "tenant": tenant},
            dedupe=record.key_id,
        )
        return secret, record

    async def find(self, key_id: str) -> tuple[str, KeyRecord] | None:
        """The digest and record of the key with public id ``key_id``, or None."""
        if not KEY_ID_PATTERN.match(key_id):
            return None
        names = await self._store.list_keys(self._bucket, f"keys/{key_id}", limit=2)
        for name in names:
            raw = await self._store.get_json(self._bucket, name)
            if raw is not None:
                return name.removeprefix("keys/").removesuffix(".json"), KeyRecord.model_validate(
                    raw
                )
        return None

    async def list(
        self, *, cursor: str | None, limit: int, tenant: str | None = None
    ) -> tuple[list[KeyRecord], str | None]:
        """A page of stored keys in id order; ``next_cursor`` is None on the last page."""
        start_after = f"keys/{cursor}" if cursor else None
        names = await self._store.list_keys(
            self._bucket, "keys/", start_after=start_after, limit=limit
        )
        raws = await asyncio.gather(*(self._store.get_json(self._bucket, n) for n in names))
        records = [KeyRecord.model_validate(r) for r in raws if r]
        if tenant is not None:
            records = [r for r in records if r.tenant == tenant]
        next_cursor = names[-1].removeprefix("keys/") if len(names) == limit else None
        return records, next_cursor

    async def revoke(self, key_id: str, *, by: ApiKey) -> KeyRecord | None:
        found = await self.find(key_id)
        if found is None:
            return None
        digest, record = found
        if record.revoked_at is None:
            record.revoked_at = utcnow()
            record.revoked_by = by.key_id
            await self._put(digest, record)
        self._known.discard(digest)
        await self.audit.record(
            "key_revoked", actor=by, subject={"key_id": key_id, "tenant": record.tenant},
            dedupe=key_id,
        )  # fmt: skip
        return record

    async def rotate(
        self, key_id: str, *, by: ApiKey, grace_s: float
    ) -> tuple[str, KeyRecord, KeyRecord] | None:
        """A new secret (and id) with the same role, tenant, name and expiry; the old key stays
        valid for ``grace_s`` seconds (0: revoked at once)."""
        found = await self.find(key_id)
        if found is None:
            return None
        digest, old = found
        secret, new = await self.create(
            old.role, old.tenant, created_by=by, expires_at=old.expires_at, name=old.name,
            rotated_from=old.key_id,
        )  # fmt: skip
        now = utcnow()
        old.rotated_to = new.key_id
        if grace_s <= 0:
            old.revoked_at, old.revoked_by = now, by.key_id
        else:
            ends = now + timedelta(seconds=grace_s)
            old.expires_at = min(old.expires_at, ends) if old.expires_at else ends
        await self._put(digest, old)
        self._known.discard(digest)
        await self.audit.record(
            "key_rotated", actor=by,
            subject={"key_id": key_id, "new_key_id": new.key_id, "grace_s": grace_s},
            dedupe=f"{key_id}/{new.key_id}",
        )  # fmt: skip
        return secret, new, old

    async def _put(self, digest: str, record: KeyRecord) -> None:
        value = record.model_dump(mode="json", exclude_none=True)
        await self._store.put_json(self._bucket, self._object_key(digest), value)


class RequestGuard:
    """What the HTTP middleware asks of every request before the route (and its body) runs.

    ``/v1`` paths need a key (except ``public_paths``); every key is rate limited per role, and
    the media routes count against a daily quota. Returns the body size limit of the route.
    """

    def __init__(
        self,
        keys: KeyStore,
        settings: Settings,
        *,
        media_routes: Iterable[tuple[str, str]] = (),
        media_limit_bytes: int | None = None,
        public_paths: Iterable[str] = (),
    ) -> None:
        self.keys = keys
        self._settings = settings
        self._media_routes = frozenset(media_routes)
        self._media_limit = media_limit_bytes or settings.max_upload_bytes
        self._public = frozenset(public_paths)
        self._buckets = TokenBuckets()
        self._quotas = DailyQuotas()
        self._limits = {
            role: Limit(
                settings.rate_limit_per_s.get(role, 0.0), settings.rate_limit_burst.get(role, 1)
            )
            for role in ROLES
        }

    async def admit(self, scope: Scope) -> int:
        path: str = scope.get("path", "")
        route = (scope.get("method", "GET"), path)
        is_media = route in self._media_routes
        limit = self._media_limit if is_media else self._settings.max_json_bytes
        if not (path == "/v1" or path.startswith("/v1/")) or path in self._public:
            return limit
        raw = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        client = str((scope.get("client") or ("-",))[0])
        api_key = await self.keys.authenticate(parse_authorization(raw), client=client)
        scope.setdefault("state", {})["api_key"] = api_key
        if (wait := self._buckets.take(api_key.key_id, self._limits[api_key.role])) is not None:
            raise ApiError(
                429, "rate_limited",
                f"too many requests for this key (role {api_key.role}); retry later",
                headers={"Retry-After": retry_after_header(wait)},
            )  # fmt: skip
        quota = self._settings.media_quota_per_day.get(api_key.role, 0)
        if is_media and (wait := self._quotas.take(api_key.key_id, quota)) is not None:
            raise ApiError(
                429, "quota_exceeded",
                f"this key has submitted its {quota} files for today (UTC)",
                headers={"Retry-After": retry_after_header(wait)},
            )  # fmt: skip
        return limit


async def require_key(request: Request) -> ApiKey:
    """The key the guard authenticated (or, without a guard, authenticate now)."""
    api_key = request.scope.get("state", {}).get("api_key")
    if isinstance(api_key, ApiKey):
        return api_key
    raw = request.headers.get("authorization")
    keys: KeyStore = request.app.state.keys
    return await keys.authenticate(parse_authorization(raw.encode("latin-1") if raw else None))


CurrentKey = Annotated[ApiKey, Depends(require_key)]


def require_role(api_key: ApiKey, *roles: Role) -> None:
    if api_key.role not in roles:
        raise ApiError(403, "forbidden", f"this call needs a key with role {' or '.join(roles)}")


def key_public(record: KeyRecord, now: datetime | None = None) -> dict[str, Any]:
    """What the API shows of a key: never its secret or digest."""
    body = record.model_dump(mode="json", exclude_none=True)
    body["status"] = record.status(now or utcnow())
    return body
