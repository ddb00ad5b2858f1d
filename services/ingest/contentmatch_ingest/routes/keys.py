"""``POST /v1/keys``: operators create keys for tenants."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from contentmatch_shared.auth import ApiKey, CurrentKey, KeyStore, Role, require_role

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyCreate(BaseModel):
    role: Role
    tenant: str


class KeyPublic(BaseModel):
    key: str
    role: Role
    tenant: str
    key_id: str


@router.post("", status_code=201, response_model=KeyPublic, operation_id="create_key")
async def create_key(body: KeyCreate, api_key: CurrentKey, request: Request) -> KeyPublic:
    require_role(api_key, "operator")
    ApiKey(key_id="new", role=body.role, tenant=body.tenant)  # validates the tenant name
    keys: KeyStore = request.app.state.keys
    secret, created = await keys.create(body.role, body.tenant)
    return KeyPublic(key=secret, role=created.role, tenant=created.tenant, key_id=created.key_id)
