"""The event envelope and the typed payloads that flow on Kafka.

Every record value is a JSON :class:`Envelope`; ``event_type`` picks the payload model. Within a
``schema_version`` changes are additive only, so old consumers keep reading new events.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from contentmatch_shared.fingerprints import Fingerprint
from contentmatch_shared.provenance import Provenance, TdmReservation

SCHEMA_VERSION = 1

MediaType = Literal["image", "audio"]
WorkKind = Literal["work", "ai_output"]
Policy = Literal["block", "monetize", "track"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class ObjectRef(BaseModel):
    """Where the bytes are. ``sha256`` and ``size`` are recorded at ingest time."""

    bucket: str
    key: str
    size: int | None = None
    sha256: str | None = None
    content_type: str | None = None


class AISystem(BaseModel):
    provider: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=200)
    version: str | None = Field(default=None, max_length=200)


class WorkMetadata(BaseModel):
    """What a rightsholder (or AI developer) says about a work: the contract's ``metadata``."""

    title: str = Field(min_length=1, max_length=500)
    kind: WorkKind = "work"
    policy: Policy = "track"
    identifiers: dict[str, str] = Field(default_factory=dict)
    territories: list[str] = Field(default_factory=list)
    ai_system: AISystem | None = None


class UploadMetadata(BaseModel):
    external_id: str | None = Field(default=None, max_length=500)
    uploader: str | None = Field(default=None, max_length=500)
    territory: str | None = Field(default=None, max_length=2)


class WorkSubmitted(BaseModel):
    work_id: str
    tenant: str
    media_type: MediaType
    object: ObjectRef
    metadata: WorkMetadata
    submitted_at: datetime


class UploadSubmitted(BaseModel):
    upload_id: str
    tenant: str  # the platform's tenant
    media_type: MediaType | None = None  # platforms publishing directly may leave it to sniffing
    object: ObjectRef
    metadata: UploadMetadata = Field(default_factory=UploadMetadata)
    submitted_at: datetime = Field(default_factory=utcnow)
    # Issued by ingest (upload_tokens.py): the only proof of tenant, id and object it carries.
    upload_token: str | None = Field(default=None, max_length=4096)


class WorkFingerprinted(BaseModel):
    """A registry entry: the latest state of a work, on the compacted ``works.registry`` topic."""

    work_id: str
    tenant: str
    media_type: MediaType
    object: ObjectRef
    metadata: WorkMetadata
    fingerprint: Fingerprint
    fingerprinted_at: datetime
    # What the work's file says about itself (C2PA, metadata, identifiers, TDM reservation).
    provenance: Provenance | None = None


class UploadFingerprinted(BaseModel):
    upload_id: str
    tenant: str
    media_type: MediaType
    object: ObjectRef
    metadata: UploadMetadata
    fingerprint: Fingerprint
    submitted_at: datetime
    provenance: Provenance | None = None  # what the upload's file says about itself


class MatchSegment(BaseModel):
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float


class MatchPublic(BaseModel):
    """The contract's ``Match``, plus the evidence behind it: what platforms may see."""

    work_id: str
    kind: WorkKind
    title: str
    tenant: str
    score: float = Field(ge=0.0, le=1.0)
    policy: Policy
    segments: list[MatchSegment] | None = None  # audio only
    media_type: MediaType
    signal: str
    distance: float | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    identifiers: dict[str, str] = Field(default_factory=dict)
    territories: list[str] = Field(default_factory=list)
    ai_system: AISystem | None = None
    # The work's text-and-data-mining reservation, as its file states it.
    tdm_reservation: TdmReservation | None = None


class Match(MatchPublic):
    """A match as it flows between the services: the public match, plus where the work's
    original is stored (for the report's thumbnails; never shown to platforms)."""

    work_object: ObjectRef | None = None
    # What match left out of this match to keep the record within Kafka's limit (see match's
    # result_bounds); empty for every work registered within ingest's metadata bounds.
    omitted: list[str] = Field(default_factory=list)
    # The work's provenance, for the report (identifiers such as its ISCC, its C2PA signer).
    work_provenance: Provenance | None = None


class UploadMatched(BaseModel):
    upload_id: str
    tenant: str
    media_type: MediaType
    object: ObjectRef
    metadata: UploadMetadata
    matches: list[Match]
    submitted_at: datetime
    matched_at: datetime
    registry_size: int = 0
    duration_s: float | None = None  # audio: the upload's length, for timelines
    provenance: Provenance | None = None  # the upload's, as fingerprint read it


class UploadPartialMatched(UploadMatched):
    """One shard's answer for an upload (``match.partials``): its matches, best first, and the
    works it holds (``registry_size``). The merger joins the ``shards`` answers into one
    :class:`UploadMatched`."""

    shard: int = Field(ge=0)
    shards: int = Field(ge=1)


class MediaFailed(BaseModel):
    subject: Literal["work", "upload"]
    subject_id: str
    tenant: str
    stage: str  # which service gave up
    code: str
    message: str
    failed_at: datetime


class ReportCreated(BaseModel):
    report_id: str
    kind: Literal["enforcement", "attribution"]
    upload_id: str
    platform_tenant: str
    work_tenants: list[str]
    work_ids: list[str]
    bucket: str
    key: str
    created_at: datetime


class WebhookDeliveryDue(BaseModel):
    """A command of the delivery service: attempt ``delivery_id`` (its ``attempt``-th attempt)
    at ``due_at``. What to send is in the delivery's record (delivery service, deliveries.py)."""

    delivery_id: str = Field(pattern=r"^dlv_[0-9]{13}[0-9a-f]{16}$")
    webhook_id: str = Field(pattern=r"^whk_[0-9a-f]{32}$")
    tenant: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    upload_id: str = Field(max_length=100)
    attempt: int = Field(ge=1)
    due_at: datetime


P = TypeVar("P", bound=BaseModel)

EVENT_PAYLOADS: dict[str, type[BaseModel]] = {
    "work.submitted": WorkSubmitted,
    "upload.submitted": UploadSubmitted,
    "work.fingerprinted": WorkFingerprinted,
    "upload.fingerprinted": UploadFingerprinted,
    "upload.matched": UploadMatched,
    "upload.partial_matched": UploadPartialMatched,
    "media.failed": MediaFailed,
    "report.created": ReportCreated,
    "webhook.delivery_due": WebhookDeliveryDue,
}
PAYLOAD_EVENT_TYPES: dict[type[BaseModel], str] = {v: k for k, v in EVENT_PAYLOADS.items()}


class Envelope(BaseModel, Generic[P]):
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    event_type: str
    schema_version: int = SCHEMA_VERSION
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str
    correlation_id: str
    payload: P


class InvalidEvent(Exception):
    """A record that can never be processed as it is: it goes to the dead-letter topic."""


def make_envelope(payload: BaseModel, *, producer: str, correlation_id: str) -> Envelope[Any]:
    return Envelope[Any](
        event_type=PAYLOAD_EVENT_TYPES[type(payload)],
        producer=producer,
        correlation_id=correlation_id,
        payload=payload,
    )


def encode_event(envelope: Envelope[Any]) -> bytes:
    return envelope.model_dump_json().encode()


def decode_event(raw: bytes | None) -> Envelope[Any]:
    """Parse and validate a record value; anything malformed raises :class:`InvalidEvent`."""
    if raw is None:
        raise InvalidEvent("record has no value")
    try:
        head = Envelope[dict[str, Any]].model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidEvent(f"not a valid envelope: {_first_error(exc)}") from exc
    if head.schema_version != SCHEMA_VERSION:
        raise InvalidEvent(f"unsupported schema_version {head.schema_version}")
    model = EVENT_PAYLOADS.get(head.event_type)
    if model is None:
        raise InvalidEvent(f"unknown event_type {head.event_type!r}")
    try:
        payload = model.model_validate(head.payload)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid {head.event_type} payload: {_first_error(exc)}") from exc
    return Envelope[Any](**{**head.model_dump(exclude={"payload"}), "payload": payload})


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err.get('msg')}" if loc else str(err.get("msg"))
