"""``/v1/uploads``: platforms submit uploads for matching and read the result."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from contentmatch_ingest.records import RecordStore
from contentmatch_ingest.submissions import (
    idempotency_digest,
    parse_form,
    parse_metadata,
    request_fingerprint,
    sniff_upload,
    store_file,
)
from contentmatch_shared import metrics
from contentmatch_shared.auth import CurrentKey, require_role
from contentmatch_shared.events import (
    Match,
    MediaType,
    ObjectRef,
    UploadMetadata,
    UploadSubmitted,
    new_id,
    utcnow,
)
from contentmatch_shared.http import ApiError
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.storage import ObjectStore
from contentmatch_shared.topics import UPLOADS_SUBMITTED

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

UploadStatus = Literal["pending", "matched", "no_match", "failed"]


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
    matches: list[Match]
    report_id: str | None
    reports: list[ReportRef]
    tenant: str
    external_id: str | None = None
    sha256: str | None = None
    submitted_at: str
    matched_at: str | None = None
    error: dict[str, str] | None = None


@router.post("", status_code=202, response_model=UploadAccepted, operation_id="submit_upload")
async def submit_upload(request: Request, response: Response, api_key: CurrentKey) -> Any:
    require_role(api_key, "platform")
    state = request.app.state
    records: RecordStore = state.records
    form = await parse_form(request)
    metadata = parse_metadata(form.metadata_raw, UploadMetadata, required=False)

    digest = idempotency_digest(request, "uploads", api_key.tenant)
    fingerprint = request_fingerprint(metadata, form.file.filename)
    if digest and (prior := await records.idempotent_response(api_key.tenant, digest)):
        if prior["request"] != fingerprint:
            raise ApiError(
                409, "idempotency_key_reused", "Idempotency-Key was used for another request"
            )
        response.headers["Idempotent-Replayed"] = "true"
        return prior["response"]

    sniffed = await sniff_upload(form.file)
    upload_id = new_id("upl")
    store: ObjectStore = state.store
    key = f"uploads/{api_key.tenant}/{upload_id}"
    stored = await store_file(store, key, form.file, sniffed, state.settings.max_upload_bytes)
    event = UploadSubmitted(
        upload_id=upload_id,
        tenant=api_key.tenant,
        media_type=sniffed.media_type,
        object=ObjectRef(
            bucket=store.settings.bucket_media,
            key=key,
            size=stored.size,
            sha256=stored.sha256,
            content_type=sniffed.content_type,
        ),
        metadata=metadata,
        submitted_at=utcnow(),
    )
    await records.put("uploads", upload_id, "submitted", event.model_dump(mode="json"))
    producer: EventProducer = state.producer
    await producer.publish(UPLOADS_SUBMITTED, upload_id, event, correlation_id=upload_id)
    metrics.UPLOADS_RECEIVED.labels(sniffed.media_type).inc()
    body = UploadAccepted(upload_id=upload_id).model_dump()
    if digest:
        await records.remember_response(
            api_key.tenant, digest, {"request": fingerprint, "response": body}
        )
    return body


@router.get("/{upload_id}", response_model=UploadPublic, operation_id="get_upload")
async def get_upload(upload_id: str, request: Request, api_key: CurrentKey) -> UploadPublic:
    require_role(api_key, "platform", "operator")
    records: RecordStore = request.app.state.records
    facts = await records.facts("uploads", upload_id, ("submitted", "matched", "failed"))
    submitted = facts["submitted"]
    if submitted is None or (api_key.role != "operator" and submitted["tenant"] != api_key.tenant):
        raise ApiError(404, "not_found", f"no upload {upload_id}")
    event = UploadSubmitted.model_validate(submitted)
    failed, matched = facts["failed"], facts["matched"]
    matches = [Match.model_validate(m) for m in (matched or {}).get("matches", [])]
    refs = await records.report_refs(upload_id) if matches else []
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
        sha256=event.object.sha256,
        submitted_at=event.submitted_at.isoformat(),
        matched_at=(matched or {}).get("matched_at"),
        error={"code": failed["code"], "message": failed["message"]} if failed else None,
    )
