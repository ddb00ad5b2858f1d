"""The ingest-status consumer: pipeline events become the records behind GET /v1/works|uploads.

Every handler writes one object whose key derives from the event's subject id: idempotent.
"""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord

from contentmatch_ingest.records import RecordStore
from contentmatch_shared.events import (
    Envelope,
    MediaFailed,
    ReportCreated,
    UploadMatched,
    UploadSubmitted,
    WorkFingerprinted,
)
from contentmatch_shared.topics import (
    MEDIA_FAILED,
    REPORTS_CREATED,
    UPLOADS_MATCHED,
    UPLOADS_SUBMITTED,
    WORKS_REGISTRY,
    TopicSpec,
)

STATUS_TOPICS: list[TopicSpec] = [
    WORKS_REGISTRY,
    MEDIA_FAILED,
    UPLOADS_MATCHED,
    REPORTS_CREATED,
    UPLOADS_SUBMITTED,
]


class StatusRecorder:
    def __init__(self, records: RecordStore) -> None:
        self._records = records

    async def __call__(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        payload = envelope.payload
        if isinstance(payload, WorkFingerprinted):
            await self._records.put(
                "works",
                payload.work_id,
                "indexed",
                {"fingerprinted_at": payload.fingerprinted_at.isoformat()},
            )
        elif isinstance(payload, MediaFailed):
            await self._records.put(
                f"{payload.subject}s", payload.subject_id, "failed", payload.model_dump(mode="json")
            )
        elif isinstance(payload, UploadMatched):
            await self._records.put(
                "uploads",
                payload.upload_id,
                "matched",
                {
                    "media_type": payload.media_type,
                    "matched_at": payload.matched_at.isoformat(),
                    "matches": [m.model_dump(mode="json") for m in payload.matches],
                },
            )
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
            # Platforms that publish straight to Kafka: the upload becomes visible over HTTP too.
            await self._records.put_if_absent(
                "uploads", payload.upload_id, "submitted", payload.model_dump(mode="json")
            )
