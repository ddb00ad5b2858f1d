"""``/v1/keys``: operators create, list, revoke and rotate keys; any key reads and rotates itself.

Only the bootstrap admin key (``CM_ADMIN_KEY``) may create, revoke or rotate operator keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from contentmatch_shared.auth import (
    ADMIN_KEY_ID,
    ApiKey,
    CurrentKey,
    KeyRecord,
    KeyStore,
    Role,
    Tenant,
    key_public,
    require_role,
)
from contentmatch_shared.events import utcnow
from contentmatch_shared.http import ApiError

router = APIRouter(prefix="/v1/keys", tags=["keys"])
_MAX_GRACE_S = 7 * 24 * 3600.0


class KeyCreate(BaseModel):
    role: Role
    tenant: Tenant
    name: str | None = Field(default=None, max_length=200)
    expires_at: datetime | None = None


class KeyRotate(BaseModel):
    grace_seconds: float | None = Field(default=None, ge=0, le=_MAX_GRACE_S)


class KeyPublic(BaseModel):
    key: str
    key_id: str
    role: Role
    tenant: str
    name: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    replaces: str | None = None


def _keys(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys
    return keys


def _may_manage(api_key: ApiKey, role: str) -> None:
    require_role(api_key, "operator")
    if role == "operator" and api_key.key_id != ADMIN_KEY_ID:
        raise ApiError(403, "forbidden", "only the bootstrap admin key manages operator keys")


@router.post("", status_code=201, response_model=KeyPublic, operation_id="create_key")
async def create_key(body: KeyCreate, api_key: CurrentKey, request: Request) -> KeyPublic:
    _may_manage(api_key, body.role)
    expires_at = body.expires_at
    if expires_at is not None:
        expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
        if expires_at <= utcnow():
            raise ApiError(422, "invalid_expiry", "expires_at must be in the future")
    secret, created = await _keys(request).create(
        body.role, body.tenant, created_by=api_key, expires_at=expires_at, name=body.name
    )
    return KeyPublic(key=secret, **created.model_dump(include=set(KeyPublic.model_fields)))


@router.get("", operation_id="list_keys")
async def list_keys(
    request: Request,
    api_key: CurrentKey,
    tenant: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=100, pattern=r"^[0-9a-f]{64}\.json$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Stored keys in id order (never their secrets). Follow ``next_cursor`` until null; with
    ``tenant`` a page may hold fewer than ``limit`` keys."""
    require_role(api_key, "operator")
    records, next_cursor = await _keys(request).list(cursor=cursor, limit=limit, tenant=tenant)
    now = utcnow()
    return {"keys": [key_public(r, now) for r in records], "next_cursor": next_cursor}


@router.get("/current", operation_id="current_key")
async def current_key(request: Request, api_key: CurrentKey) -> dict[str, Any]:
    """The calling key itself: id, role, tenant, expiry."""
    if api_key.key_id == ADMIN_KEY_ID:
        return {**api_key.model_dump(), "status": "active"}
    found = await _keys(request).find(api_key.key_id)
    if found is None:
        raise ApiError(404, "not_found", "this key is not stored (was it just revoked?)")
    return key_public(found[1])


async def _target(request: Request, api_key: ApiKey, key_id: str) -> KeyRecord:
    """The key ``key_id`` if the caller may manage it: an operator any (the admin also
    operator keys); any key itself."""
    found = await _keys(request).find(key_id)
    if found is None or (api_key.role != "operator" and key_id != api_key.key_id):
        raise ApiError(404, "not_found", f"no key {key_id}")
    record = found[1]
    if key_id != api_key.key_id:
        _may_manage(api_key, record.role)
    return record


@router.get("/{key_id}", operation_id="get_key")
async def get_key(key_id: str, request: Request, api_key: CurrentKey) -> dict[str, Any]:
    return key_public(await _target(request, api_key, key_id))


@router.delete("/{key_id}", operation_id="revoke_key")
async def revoke_key(key_id: str, request: Request, api_key: CurrentKey) -> dict[str, Any]:
    """Revoke at once (other processes stop accepting it within ``CM_AUTH_CACHE_TTL_S``)."""
    await _target(request, api_key, key_id)
    revoked = await _keys(request).revoke(key_id, by=api_key)
    if revoked is None:
        raise ApiError(404, "not_found", f"no key {key_id}")
    return key_public(revoked)


@router.post(
    "/{key_id}/rotate", status_code=201, response_model=KeyPublic, operation_id="rotate_key"
)
async def rotate_key(
    key_id: str, request: Request, api_key: CurrentKey, body: KeyRotate | None = None
) -> KeyPublic:
    """A new secret (with a new id) for the same role and tenant. The old key stays valid for
    ``grace_seconds`` (default ``CM_KEY_ROTATION_GRACE_S``; 0 revokes it at once)."""
    await _target(request, api_key, key_id)
    settings = request.app.state.settings
    grace = settings.key_rotation_grace_s if body is None or body.grace_seconds is None else (
        body.grace_seconds
    )  # fmt: skip
    rotated = await _keys(request).rotate(key_id, by=api_key, grace_s=grace)
    if rotated is None:
        raise ApiError(404, "not_found", f"no key {key_id}")
    secret, new, _old = rotated
    return KeyPublic(
        key=secret, replaces=key_id, **new.model_dump(include=set(KeyPublic.model_fields))
    )
