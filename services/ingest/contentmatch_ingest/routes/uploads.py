"""``/v1/uploads``: platforms submit uploads for matching and read the result."""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from contentmatch_ingest.backpressure import refuse_when_backlogged
from contentmatch_ingest.records import RecordStore
from contentmatch_ingest.submissions import (
    IdempotencyGuard,
    parse_form,
    parse_metadata,
    store_media,
)
from contentmatch_shared import metrics
from contentmatch_shared.auth import CurrentKey, require_role
from contentmatch_shared.events import (
    MatchPublic,
    MediaType,
    UploadMetadata,
    UploadSubmitted,
    utcnow,
)
from contentmatch_shared.http import ApiError
from contentmatch_shared.ids import is_id
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
    records: RecordStore = request.app.state.records
    facts = await records.facts("uploads", upload_id, ("submitted", "matched", "failed"))
    submitted = facts["submitted"]
    if submitted is None or (api_key.role != "operator" and submitted["tenant"] != api_key.tenant):
        raise ApiError(404, "not_found", f"no upload {upload_id}")
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
