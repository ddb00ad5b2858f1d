"""``/v1/reports``: enforcement teams, rightsholders, platforms and operators read reports.

Who sees what: operators everything; rightsholder and enforcement keys the reports about their
tenant's works; platform keys the reports about their own uploads. Anything else is a 404, so a
key cannot even learn that another tenant's report exists. A report names its related reports by
id and kind only; which of them a reader may see (and their works) is resolved per reader here.
"""

from __future__ import annotations

import asyncio
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from contentmatch_report.builder import summary_of
from contentmatch_report.html import render_report
from contentmatch_report.signing import ReportSigner
from contentmatch_report.store import ReportStore, SummaryFilter
from contentmatch_shared.auth import ApiKey, CurrentKey
from contentmatch_shared.http import ApiError
from contentmatch_shared.ids import TENANT_MAX, TENANT_PATTERN, is_id

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@dataclass(frozen=True)
class Listing:
    """Which index a key's listing reads, and what it filters that the index does not."""

    scope: str
    scope_id: str
    keep: SummaryFilter | None = None


def _all_of(*tests: SummaryFilter | None) -> SummaryFilter | None:
    active = [t for t in tests if t is not None]
    if not active:
        return None
    return lambda summary: all(t(summary) for t in active)


def listing_for(api_key: ApiKey, work: str | None, platform: str | None) -> Listing:
    """The narrowest index the key may read for these filters (a work's index when a work is
    named), with the tenant rule re-checked on every summary where that index is wider."""
    by_platform: SummaryFilter | None = (
        (lambda s: s.get("platform_tenant") == platform) if platform else None
    )
    by_work: SummaryFilter | None = (lambda s: s.get("work_id") == work) if work else None
    if api_key.role == "operator":
        if work:
            return Listing("work", work, by_platform)
        if platform:
            return Listing("platform", platform)
        return Listing("all", "_")
    if api_key.role in ("enforcement", "rightsholder"):
        tenant = api_key.tenant
        if work:
            # The work's index holds one tenant's reports; another tenant's work lists empty.
            mine: SummaryFilter = lambda s: s.get("work_tenant") == tenant  # noqa: E731
            return Listing("work", work, _all_of(mine, by_platform))
        return Listing("tenant", tenant, by_platform)
    if api_key.role == "platform":
        if platform and platform != api_key.tenant:
            raise ApiError(404, "not_found", "no such platform for this key")
        return Listing("platform", api_key.tenant, by_work)
    raise ApiError(403, "forbidden", "this key cannot read reports")


def may_read(api_key: ApiKey, report: dict[str, Any]) -> bool:
    if api_key.role == "operator":
        return True
    if api_key.role in ("enforcement", "rightsholder"):
        work = report.get("work")  # a report from provenance alone concerns no tenant's work
        return bool(work and work["tenant"] == api_key.tenant)
    if api_key.role == "platform":
        return bool(report["upload"]["tenant"] == api_key.tenant)
    return False


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


async def _readable_report(
    request: Request, api_key: ApiKey, report_id: str
) -> tuple[bytes, dict[str, Any]]:
    reports: ReportStore = request.app.state.reports
    data = await reports.get_bytes(report_id) if is_id(report_id, "rep") else None
    if data is None:
        raise ApiError(404, "not_found", f"no report {report_id[:100]!r}")
    report = json.loads(data)
    if not may_read(api_key, report):
        raise ApiError(404, "not_found", f"no report {report_id[:100]!r}")
    await request.app.state.keys.audit.report_read(api_key, report_id, request.url.path)
    return data, report


async def _readable_related(
    request: Request, api_key: ApiKey, report: dict[str, Any]
) -> list[dict[str, Any]]:
    """Summaries of the report's related reports that this key may read, in the report's order."""
    reports: ReportStore = request.app.state.reports
    ids = [
        ref["report_id"]
        for ref in report.get("related_reports", [])
        if isinstance(ref, dict) and str(ref.get("report_id", "")).startswith("rep_")
    ]
    found = await asyncio.gather(*(reports.get(i) for i in ids))
    return [summary_of(other) for other in found if other and may_read(api_key, other)]


@router.get("", operation_id="list_reports")
async def list_reports(
    request: Request,
    api_key: CurrentKey,
    kind: Literal["enforcement", "attribution"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    work: Annotated[str | None, Query(pattern=r"^wrk_[0-9a-f]{32}$")] = None,
    platform: Annotated[str | None, Query(max_length=TENANT_MAX, pattern=TENANT_PATTERN)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Oldest first; ``since`` inclusive, ``until`` exclusive. Follow ``next_cursor`` until it is
    null: reports created while paging appear on later pages, none is skipped or repeated."""
    listing = listing_for(api_key, work, platform)
    reports: ReportStore = request.app.state.reports
    try:
        summaries, next_cursor = await reports.list(
            listing.scope,
            listing.scope_id,
            kind,
            since=_aware(since),
            until=_aware(until),
            cursor=cursor,
            limit=limit,
            keep=listing.keep,
        )
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        message = "the cursor is not one this listing returned"
        raise ApiError(400, "invalid_cursor", message) from exc
    return {"reports": summaries, "next_cursor": next_cursor}


@router.get("/public-key", operation_id="report_public_key")
async def public_key(request: Request) -> dict[str, Any]:
    """The key that signs reports now (public by nature: no key needed)."""
    signer: ReportSigner = request.app.state.signer
    return signer.public_key_info()


@router.get("/public-keys", operation_id="report_public_keys")
async def public_keys(request: Request) -> dict[str, list[dict[str, Any]]]:
    """Every key that signed reports (current first, then retired ones with their validity
    dates): a verifier picks the one named by the report's ``signature.key_id``."""
    signer: ReportSigner = request.app.state.signer
    return {"keys": signer.public_keys()}


@router.get("/{report_id}", operation_id="get_report", response_model=None)
async def get_report(
    report_id: str,
    request: Request,
    api_key: CurrentKey,
    format: Literal["json", "html"] = "json",
) -> Response:
    data, report = await _readable_report(request, api_key, report_id)
    if format == "html":
        reports: ReportStore = request.app.state.reports
        signer: ReportSigner = request.app.state.signer
        names = [ref["name"] for ref in report.get("evidence", {}).get("pictures", [])]
        blobs = await asyncio.gather(*(reports.get_asset(report_id, n) for n in names))
        pictures = dict(zip(names, blobs, strict=True))
        related = await _readable_related(request, api_key, report)
        page = render_report(report, signer, pictures, related)
        return HTMLResponse(page, headers={"Content-Security-Policy": _PAGE_POLICY})
    # The stored bytes, unchanged: what was signed is what is served.
    return Response(content=data, media_type="application/json")


@router.get("/{report_id}/related", operation_id="get_related_reports")
async def get_related_reports(
    report_id: str, request: Request, api_key: CurrentKey
) -> dict[str, list[dict[str, Any]]]:
    """The other reports about the same upload that this key may read, as listing summaries."""
    _, report = await _readable_report(request, api_key, report_id)
    return {"related_reports": await _readable_related(request, api_key, report)}


# The page is self-contained (pictures inlined as data: URIs, styles inline): nothing else loads.
_PAGE_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@router.get("/{report_id}/assets/{name}", operation_id="get_report_asset", response_model=None)
async def get_report_asset(
    report_id: str, name: str, request: Request, api_key: CurrentKey
) -> Response:
    """A picture named in the report's evidence (its sha256 is in the signed report)."""
    _, report = await _readable_report(request, api_key, report_id)
    named = {p["name"]: p for p in report.get("evidence", {}).get("pictures", [])}
    if name not in named:
        raise ApiError(404, "not_found", f"report {report_id} has no picture {name}")
    reports: ReportStore = request.app.state.reports
    data = await reports.get_asset(report_id, name)
    if data is None:
        raise ApiError(404, "not_found", f"the picture {name} is no longer stored")
    return Response(
        content=data,
        media_type=named[name]["content_type"],
        headers={"Cache-Control": "private, max-age=86400"},
    )
