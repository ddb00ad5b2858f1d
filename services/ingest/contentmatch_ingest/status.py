"""The ingest-status consumer: pipeline events become the records behind GET /v1/works|uploads.

Every handler writes one object whose key derives from the event's subject id: idempotent.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import ConsumerRecord

from contentmatch_ingest.records import RecordStore
from contentmatch_shared import metrics
from contentmatch_shared.events import (
    Envelope,
    MediaFailed,
    ReportCreated,
    UploadMatched,
    UploadSubmitted,
    WorkFingerprinted,
    utcnow,
)
from contentmatch_shared.ids import is_id
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import (
    MEDIA_FAILED,
    REPORTS_CREATED,
    UPLOADS_MATCHED,
    UPLOADS_SUBMITTED,
    WORKS_REGISTRY,
    TopicSpec,
)
from contentmatch_shared.upload_tokens import (
    UNAUTHENTIC_REFUSALS,
    UploadRefused,
    published_at,
    verify_upload,
)

log = logging.getLogger(__name__)

STATUS_TOPICS: list[TopicSpec] = [
    WORKS_REGISTRY,
    MEDIA_FAILED,
    UPLOADS_MATCHED,
    REPORTS_CREATED,
    UPLOADS_SUBMITTED,
]


class StatusRecorder:
    def __init__(
        self, records: RecordStore, settings: Settings, upload_secret: bytes, service: str
    ) -> None:
        self._records = records
        self._service = service  # the envelope producer of ingest's own events
        self._settings = settings
        self._upload_secret = upload_secret

    async def __call__(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        payload = envelope.payload
        if isinstance(payload, WorkFingerprinted):
            await self._records.put(
                "works",
                payload.work_id,
                "indexed",
                {
                    "fingerprinted_at": payload.fingerprinted_at.isoformat(),
                    "provenance": payload.provenance.model_dump(mode="json")
                    if payload.provenance
                    else None,
                },
            )
        elif isinstance(payload, MediaFailed):
            if payload.code in UNAUTHENTIC_REFUSALS or not is_id(
                payload.subject_id, "upl" if payload.subject == "upload" else "wrk"
            ):
                return  # a refused event's ids were chosen by its publisher: record nothing
            await self._records.put(
                f"{payload.subject}s", payload.subject_id, "failed", payload.model_dump(mode="json")
            )
            if payload.subject == "upload":
                await self._records.note_change(payload.tenant, payload.subject_id, utcnow())
        elif isinstance(payload, UploadMatched):
            await self._records.put(
                "uploads",
                payload.upload_id,
                "matched",
                {
                    "sha256": payload.object.sha256,
                    "media_type": payload.media_type,
                    "matched_at": payload.matched_at.isoformat(),
                    "matches": [m.model_dump(mode="json") for m in payload.matches],
                    "provenance": payload.provenance.model_dump(mode="json")
                    if payload.provenance
                    else None,
                },
            )
            metrics.UPLOAD_VERDICT_SECONDS.labels(
                "matched" if payload.matches else "no_match"
            ).observe(max((utcnow() - payload.submitted_at).total_seconds(), 0.0))
            await self._records.note_change(payload.tenant, payload.upload_id, utcnow())
        elif isinstance(payload, ReportCreated):
            await self._records.put(
                "uploads",
                payload.upload_id,
                f"reports/{payload.report_id}",
                {
                    "report_id": payload.report_id,
                    "kind": payload.kind,
                    "work_id": payload.work_ids[0] if payload.work_ids else None,
                },
            )
        elif isinstance(payload, UploadSubmitted):
            if envelope.producer == self._service:
                # Ingest wrote this upload's record before publishing it: nothing to do (a
                # publisher claiming to be ingest only keeps its own upload unrecorded).
                return
            # Platforms that publish straight to Kafka: the upload becomes visible over HTTP too,
            # once its token proves tenant, id and object (fingerprint reports refusals).
            try:
                trusted = verify_upload(
                    payload, self._settings, self._upload_secret, at=published_at(record)
                )
            except UploadRefused as exc:
                log.warning("not recording upload.submitted %r: %s", payload.upload_id[:100], exc)
                return
            await self._records.put_if_absent(
                "uploads", trusted.upload_id, "submitted", trusted.model_dump(mode="json")
            )
            await self._records.note_change(trusted.tenant, trusted.upload_id, utcnow())
