"""``GET /v1/audit``: the operator reads the audit log (key lifecycle, key use, report reads)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from contentmatch_shared.audit import AuditLog
from contentmatch_shared.auth import CurrentKey, require_role
from contentmatch_shared.events import utcnow

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", operation_id="read_audit")
async def read_audit(
    request: Request,
    api_key: CurrentKey,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Events at or after ``since`` (default: the last 24 hours; at most 31 days back),
    oldest first."""
    require_role(api_key, "operator")
    start = since or utcnow() - timedelta(days=1)
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    audit: AuditLog = request.app.state.audit
    return {"events": await audit.read(start, limit=limit)}
