"""``/v1/works``: rightsholders and AI developers register works and outputs."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

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
    AISystem,
    MediaType,
    WorkKind,
    WorkMetadata,
    WorkSubmitted,
    utcnow,
)
from contentmatch_shared.http import ApiError
from contentmatch_shared.ids import is_id
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.provenance import Provenance, ProvenancePublic
from contentmatch_shared.topics import WORKS_SUBMITTED

router = APIRouter(prefix="/v1/works", tags=["works"])


class WorkAccepted(BaseModel):
    work_id: str
    status: Literal["pending"] = "pending"


class WorkPublic(BaseModel):
    work_id: str
    status: Literal["pending", "indexed", "failed"]
    media_type: MediaType
    title: str
    kind: WorkKind
    tenant: str
    policy: str
    identifiers: dict[str, str]
    territories: list[str]
    ai_system: AISystem | None = None
    sha256: str | None = None
    size: int | None = None
    submitted_at: str
    indexed_at: str | None = None
    error: dict[str, str] | None = None
    provenance: ProvenancePublic | None = None  # what the work's file says (once indexed)


@router.post("", status_code=202, response_model=WorkAccepted, operation_id="register_work")
async def register_work(request: Request, response: Response, api_key: CurrentKey) -> Any:
    require_role(api_key, "rightsholder")
    state = request.app.state
    records: RecordStore = state.records
    form = await parse_form(request)
    metadata = parse_metadata(
        form.metadata_raw, WorkMetadata, required=True, max_bytes=state.settings.max_metadata_bytes
    )
    if metadata.kind == "ai_output" and metadata.ai_system is None:
        raise ApiError(422, "invalid_metadata", "ai_system is required when kind is ai_output")

    guard = IdempotencyGuard.for_request(request, records, "works", api_key.tenant, form, metadata)
    if (prior := await guard.replay(response)) is not None:
        return prior

    work_id = guard.new_id("wrk")
    sniffed, ref = await store_media(request, form, guard.media_key(f"works/{work_id}"))
    event = WorkSubmitted(
        work_id=work_id,
        tenant=api_key.tenant,
        media_type=sniffed.media_type,
        object=ref,
        metadata=metadata,
        submitted_at=utcnow(),
    )
    await records.put("works", work_id, "submitted", event.model_dump(mode="json"))
    producer: EventProducer = state.producer
    await producer.publish(WORKS_SUBMITTED, work_id, event, correlation_id=work_id)
    metrics.WORKS_RECEIVED.labels(sniffed.media_type, metadata.kind).inc()
    body = WorkAccepted(work_id=work_id).model_dump()
    await guard.remember(body)
    return body


@router.get("/{work_id}", response_model=WorkPublic, operation_id="get_work")
async def get_work(work_id: str, request: Request, api_key: CurrentKey) -> WorkPublic:
    require_role(api_key, "rightsholder", "enforcement", "operator")
    if not is_id(work_id, "wrk"):
        raise ApiError(404, "not_found", f"no work {work_id[:100]!r}: not a work id")
    records: RecordStore = request.app.state.records
    facts = await records.facts("works", work_id, ("submitted", "indexed", "failed"))
    submitted = facts["submitted"]
    if submitted is None or (api_key.role != "operator" and submitted["tenant"] != api_key.tenant):
        raise ApiError(404, "not_found", f"no work {work_id}")
    event = WorkSubmitted.model_validate(submitted)
    failed, indexed = facts["failed"], facts["indexed"]
    status: Literal["pending", "indexed", "failed"] = (
        "failed" if failed else "indexed" if indexed else "pending"
    )
    return WorkPublic(
        work_id=work_id,
        status=status,
        media_type=event.media_type,
        title=event.metadata.title,
        kind=event.metadata.kind,
        tenant=event.tenant,
        policy=event.metadata.policy,
        identifiers=event.metadata.identifiers,
        territories=event.metadata.territories,
        ai_system=event.metadata.ai_system,
        sha256=event.object.sha256,
        size=event.object.size,
        submitted_at=event.submitted_at.isoformat(),
        indexed_at=indexed.get("fingerprinted_at") if indexed else None,
        error={"code": failed["code"], "message": failed["message"]} if failed else None,
        provenance=_provenance(indexed),
    )


def _provenance(record: dict[str, Any] | None) -> ProvenancePublic | None:
    stored = (record or {}).get("provenance")
    return ProvenancePublic.of(Provenance.model_validate(stored)) if stored else None
