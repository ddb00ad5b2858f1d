"""``/v1/reports``: enforcement teams, rightsholders, platforms and operators read reports."""

from __future__ import annotations

import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from contentmatch_report.signing import ReportSigner
from contentmatch_report.store import ReportStore
from contentmatch_shared.auth import ApiKey, CurrentKey
from contentmatch_shared.http import ApiError

router = APIRouter(prefix="/v1/reports", tags=["reports"])


def _scope_for(api_key: ApiKey, work: str | None, platform: str | None) -> tuple[str, str]:
    """The listing scope a key may read, narrowed by the ``work``/``platform`` filters."""
    if api_key.role == "operator":
        if work:
            return "work", work
        if platform:
            return "platform", platform
        return "all", "_"
    if api_key.role in ("enforcement", "rightsholder"):
        if platform:
            raise ApiError(400, "invalid_filter", "the platform filter is for operators")
        return ("work", work) if work else ("tenant", api_key.tenant)
    if api_key.role == "platform":
        if platform and platform != api_key.tenant:
            raise ApiError(404, "not_found", "no such platform for this key")
        if work:
            raise ApiError(400, "invalid_filter", "the work filter is not for platform keys")
        return "platform", api_key.tenant
    raise ApiError(403, "forbidden", "this key cannot read reports")


def may_read(api_key: ApiKey, report: dict[str, Any]) -> bool:
    if api_key.role == "operator":
        return True
    if api_key.role in ("enforcement", "rightsholder"):
        return bool(report["work"]["tenant"] == api_key.tenant)
    if api_key.role == "platform":
        return bool(report["upload"]["tenant"] == api_key.tenant)
    return False


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@router.get("", operation_id="list_reports")
async def list_reports(
    request: Request,
    api_key: CurrentKey,
    kind: Literal["enforcement", "attribution"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    work: str | None = None,
    platform: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    scope, scope_id = _scope_for(api_key, work, platform)
    reports: ReportStore = request.app.state.reports
    try:
        summaries, next_cursor = await reports.list(
            scope,
            scope_id,
            kind,
            since=_aware(since),
            until=_aware(until),
            cursor=cursor,
            limit=limit,
        )
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API returned") from exc
    if scope == "work" and api_key.role != "operator":
        # The work filter must not reveal another tenant's reports.
        summaries = [s for s in summaries if s.get("work_tenant") == api_key.tenant]
    return {"reports": summaries, "next_cursor": next_cursor}


@router.get("/public-key", operation_id="report_public_key")
async def public_key(request: Request) -> dict[str, str]:
    """The key that verifies report signatures (public by nature: no key needed)."""
    signer: ReportSigner = request.app.state.signer
    return signer.public_key_info()


@router.get("/{report_id}", operation_id="get_report", response_model=None)
async def get_report(
    report_id: str,
    request: Request,
    api_key: CurrentKey,
    format: Literal["json", "html"] = "json",
) -> Response:
    reports: ReportStore = request.app.state.reports
    data = await reports.get_bytes(report_id)
    if data is None:
        raise ApiError(404, "not_found", f"no report {report_id}")
    report = json.loads(data)
    if not may_read(api_key, report):
        raise ApiError(404, "not_found", f"no report {report_id}")
    if format == "html":
        from contentmatch_report.html import render_report

        signer: ReportSigner = request.app.state.signer
        return HTMLResponse(render_report(report, signer))
    # The stored bytes, unchanged: what was signed is what is served.
    return Response(content=data, media_type="application/json")
