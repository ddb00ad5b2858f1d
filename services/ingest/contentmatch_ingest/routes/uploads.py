"""``/v1/uploads``: platforms submit uploads for matching and read the result."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from contentmatch_ingest.backpressure import refuse_when_backlogged
from contentmatch_ingest.records import RecordStore, is_cursor, since_cursor
from contentmatch_ingest.submissions import (
    IdempotencyGuard,
    parse_form,
    parse_metadata,
    store_media,
)
from contentmatch_shared import metrics
from contentmatch_shared.auth import ApiKey, CurrentKey, require_role
from contentmatch_shared.events import (
    MatchPublic,
    MediaType,
    UploadMetadata,
    UploadSubmitted,
    utcnow,
)
from contentmatch_shared.http import ApiError
from contentmatch_shared.ids import TENANT_MAX, TENANT_PATTERN, is_id
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.provenance import Provenance, ProvenancePublic
from contentmatch_shared.topics import UPLOADS_SUBMITTED
from contentmatch_shared.upload_tokens import new_grant, sign_grant

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

UploadStatus = Literal["pending", "matched", "no_match", "failed"]

_STORAGE_URL = re.compile(r"s3://\S+")


def public_message(message: str) -> str:
    """A pipeline error as a platform may read it: no bucket or storage key."""
    return _STORAGE_URL.sub("(storage location withheld)", message)


class UploadAccepted(BaseModel):
    upload_id: str
    status: Literal["pending"] = "pending"


class ReportRef(BaseModel):
    report_id: str
    kind: str
    work_id: str | None = None


class UploadPublic(BaseModel):
    upload_id: str
    status: UploadStatus
    media_type: MediaType | None
    matches: list[MatchPublic]  # never the work's storage location
    report_id: str | None
    reports: list[ReportRef]
    tenant: str
    external_id: str | None = None
    sha256: str | None = None
    submitted_at: str
    matched_at: str | None = None
    error: dict[str, str] | None = None
    provenance: ProvenancePublic | None = None  # what the upload's file says (once matched)


@router.post("", status_code=202, response_model=UploadAccepted, operation_id="submit_upload")
async def submit_upload(request: Request, response: Response, api_key: CurrentKey) -> Any:
    require_role(api_key, "platform")
    refuse_when_backlogged(request)
    state = request.app.state
    records: RecordStore = state.records
    form = await parse_form(request)
    limit = state.settings.max_metadata_bytes
    metadata = parse_metadata(form.metadata_raw, UploadMetadata, required=False, max_bytes=limit)

    guard = IdempotencyGuard.for_request(
        request, records, "uploads", api_key.tenant, form, metadata
    )
    if (prior := await guard.replay(response)) is not None:
        return prior

    upload_id = guard.new_id("upl")
    sniffed, ref = await store_media(
        request, form, guard.media_key(f"uploads/{api_key.tenant}/{upload_id}")
    )
    grant = new_grant(
        state.settings, api_key.tenant, upload_id, key=ref.key, sha256=ref.sha256, size=ref.size
    )
    event = UploadSubmitted(
        upload_id=upload_id,
        tenant=api_key.tenant,
        media_type=sniffed.media_type,
        object=ref,
        metadata=metadata,
        submitted_at=utcnow(),
        upload_token=sign_grant(grant, state.upload_token_secret),
    )
    await records.put("uploads", upload_id, "submitted", event.model_dump(mode="json"))
    await records.note_change(api_key.tenant, upload_id, event.submitted_at)
    producer: EventProducer = state.producer
    await producer.publish(UPLOADS_SUBMITTED, upload_id, event, correlation_id=upload_id)
    metrics.UPLOADS_RECEIVED.labels(sniffed.media_type).inc()
    body = UploadAccepted(upload_id=upload_id).model_dump()
    await guard.remember(body)
    return body


@router.get("/{upload_id}", response_model=UploadPublic, operation_id="get_upload")
async def get_upload(upload_id: str, request: Request, api_key: CurrentKey) -> UploadPublic:
    require_role(api_key, "platform", "operator")
    if not is_id(upload_id, "upl"):
        raise ApiError(404, "not_found", f"no upload {upload_id[:100]!r}: not an upload id")
    view = await upload_view(request.app.state.records, upload_id, api_key)
    if view is None:
        raise ApiError(404, "not_found", f"no upload {upload_id}")
    return view


class UploadBatch(BaseModel):
    uploads: list[UploadPublic]
    not_found: list[str] = []  # ?ids= only: unknown ids and other tenants' uploads
    next_cursor: str | None = None  # ?since= only: null on the last page
    resume_cursor: str | None = None  # ?since= only: pass as cursor later for newer changes


_MAX_IDS = 100


@router.get("", response_model=UploadBatch, operation_id="list_uploads")
async def list_uploads(
    request: Request,
    api_key: CurrentKey,
    ids: Annotated[str | None, Query(max_length=_MAX_IDS * 40)] = None,
    since: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=60)] = None,
    tenant: Annotated[str | None, Query(max_length=TENANT_MAX, pattern=TENANT_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=_MAX_IDS)] = 50,
) -> UploadBatch:
    """Many uploads' status at once, for platforms that reconcile.

    ``ids=a,b,c`` (up to 100): those uploads, in the order asked; ids that are unknown or not
    this tenant's are listed under ``not_found``. ``since`` (ISO 8601) or ``cursor``: the uploads
    that changed (submitted, verdict, failure) since then, oldest change first, each with its
    current status; an upload that changes again appears again later. Follow ``next_cursor``
    until it is null, then keep ``resume_cursor`` to ask for newer changes later.
    """
    require_role(api_key, "platform", "operator")
    records: RecordStore = request.app.state.records
    if ids is not None:
        if since is not None or cursor is not None:
            raise ApiError(400, "invalid_request", "give either ids, or since/cursor, not both")
        return await _by_ids(records, api_key, ids)
    if since is None and cursor is None:
        raise ApiError(400, "invalid_request", "give ids=..., since=<ISO 8601> or cursor=...")
    if api_key.role == "operator":
        if tenant is None:
            raise ApiError(400, "invalid_request", "an operator names the platform: tenant=...")
    elif tenant is not None and tenant != api_key.tenant:
        raise ApiError(404, "not_found", "no such platform for this key")
    owner = tenant or api_key.tenant
    if cursor is not None:
        if not is_cursor(cursor):
            raise ApiError(400, "invalid_cursor", "the cursor is not one this listing returned")
        after = cursor
    else:
        assert since is not None
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        after = since_cursor(moment)
    changes = await records.changes(owner, after=after, limit=limit)
    seen: dict[str, None] = dict.fromkeys(upload_id for _, upload_id in changes)
    views = await asyncio.gather(*(upload_view(records, u, api_key) for u in seen))
    last = changes[-1][0] if changes else (cursor if cursor is not None else None)
    return UploadBatch(
        uploads=[v for v in views if v is not None],
        next_cursor=last if len(changes) == limit else None,
        resume_cursor=last or after,
    )


async def _by_ids(records: RecordStore, api_key: ApiKey, raw: str) -> UploadBatch:
    wanted = list(dict.fromkeys(i.strip() for i in raw.split(",") if i.strip()))
    if not wanted:
        raise ApiError(400, "invalid_request", "ids: give 1 to 100 comma-separated upload ids")
    if len(wanted) > _MAX_IDS:
        raise ApiError(400, "invalid_request", f"ids: at most {_MAX_IDS} upload ids per call")
    valid = [i for i in wanted if is_id(i, "upl")]
    views = dict(
        zip(
            valid,
            await asyncio.gather(*(upload_view(records, i, api_key) for i in valid)),
            strict=True,
        )
    )
    return UploadBatch(
        uploads=[v for i in wanted if (v := views.get(i)) is not None],
        not_found=[i[:100] for i in wanted if views.get(i) is None],
    )


async def upload_view(records: RecordStore, upload_id: str, api_key: ApiKey) -> UploadPublic | None:
    """What ``api_key`` may see of the upload, or None (unknown, or another tenant's)."""
    facts = await records.facts("uploads", upload_id, ("submitted", "matched", "failed"))
    submitted = facts["submitted"]
    if submitted is None or (api_key.role != "operator" and submitted["tenant"] != api_key.tenant):
        return None
    event = UploadSubmitted.model_validate(submitted)
    failed, matched = facts["failed"], facts["matched"]
    matches = [MatchPublic.model_validate(m) for m in (matched or {}).get("matches", [])]
    stored_provenance = (matched or {}).get("provenance")
    provenance = Provenance.model_validate(stored_provenance) if stored_provenance else None
    # An upload with no match may still have an attribution report from its own provenance.
    has_reports = bool(matches) or (provenance is not None and provenance.ai_generated)
    refs = await records.report_refs(upload_id) if has_reports else []
    # Enforcement before attribution, then in match order: report_id names the first.
    order = {m.work_id: i for i, m in enumerate(matches)}
    refs.sort(key=lambda r: (r.get("kind") != "enforcement", order.get(r.get("work_id"), 99)))
    status: UploadStatus
    if failed:
        status = "failed"
    elif matched is None:
        status = "pending"
    else:
        status = "matched" if matches else "no_match"
    return UploadPublic(
        upload_id=upload_id,
        status=status,
        media_type=(matched or {}).get("media_type") or event.media_type,
        matches=matches,
        report_id=refs[0]["report_id"] if refs else None,
        reports=[ReportRef.model_validate(r) for r in refs],
        tenant=event.tenant,
        external_id=event.metadata.external_id,
        # A direct upload's sha256 is the fingerprint service's, from the bytes it read.
        sha256=event.object.sha256 or (matched or {}).get("sha256"),
        submitted_at=event.submitted_at.isoformat(),
        matched_at=(matched or {}).get("matched_at"),
        error={"code": failed["code"], "message": public_message(failed["message"])}
        if failed
        else None,
        provenance=ProvenancePublic.of(provenance) if provenance else None,
    )
