"""API keys: who is calling, for which tenant, in which role.

Keys live in the state bucket under ``keys/<sha256(key)>.json`` (the key itself is never stored),
so every service validates the same keys. The operator key comes from ``CM_ADMIN_KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Annotated, Literal

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from contentmatch_shared.events import utcnow
from contentmatch_shared.http import ApiError
from contentmatch_shared.storage import ObjectStore

Role = Literal["operator", "rightsholder", "platform", "enforcement"]
_CACHE_TTL_S = 30.0


class ApiKey(BaseModel):
    key_id: str
    role: Role
    tenant: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, store: ObjectStore, admin_key: str) -> None:
        self._store = store
        self._admin_key = admin_key
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def _object_key(self, digest: str) -> str:
        return f"keys/{digest}.json"

    async def create(self, role: Role, tenant: str) -> tuple[str, ApiKey]:
        secret = f"cm_{role[:4]}_{secrets.token_urlsafe(24)}"
        digest = _digest(secret)
        api_key = ApiKey(key_id=digest[:16], role=role, tenant=tenant)
        record = {**api_key.model_dump(), "created_at": utcnow().isoformat()}
        await self._store.put_json(
            self._store.settings.bucket_state, self._object_key(digest), record
        )
        return secret, api_key

    async def resolve(self, secret: str) -> ApiKey | None:
        if self._admin_key and hmac.compare_digest(secret, self._admin_key):
            return ApiKey(key_id="admin", role="operator", tenant="operator")
        digest = _digest(secret)
        cached = self._cache.get(digest)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        record = await self._store.get_json(
            self._store.settings.bucket_state, self._object_key(digest)
        )
        api_key = ApiKey.model_validate(record) if record else None
        # Known keys are cached longer than unknown ones, so a new key works at once elsewhere.
        ttl = _CACHE_TTL_S if api_key else 1.0
        self._cache[digest] = (time.monotonic() + ttl, api_key)
        return api_key


async def require_key(request: Request) -> ApiKey:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthorized", "missing bearer token in the Authorization header")
    keys: KeyStore = request.app.state.keys
    api_key = await keys.resolve(secret.strip())
    if api_key is None:
        raise ApiError(401, "unauthorized", "unknown API key")
    return api_key


CurrentKey = Annotated[ApiKey, Depends(require_key)]


def require_role(api_key: ApiKey, *roles: Role) -> None:
    if api_key.role not in roles:
        raise ApiError(403, "forbidden", f"this call needs a key with role {' or '.join(roles)}")
