"""The high-volume path for platforms: put the object into S3, publish ``uploads.submitted``.

This is what ``contentmatch publish-upload`` runs, and the example the README points to. It
needs only the ``minio`` and ``aiokafka`` clients and the event schema.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from contentmatch_shared.events import (
    ObjectRef,
    UploadMetadata,
    UploadSubmitted,
    encode_event,
    make_envelope,
    new_id,
    utcnow,
)
from contentmatch_shared.kafka.connection import new_producer
from contentmatch_shared.settings import Settings, get_settings
from contentmatch_shared.storage import ObjectStore
from contentmatch_shared.topics import UPLOADS_SUBMITTED


async def publish_file_async(
    path: str, *, tenant: str, external_id: str | None = None, settings: Settings | None = None
) -> str:
    settings = settings or get_settings()
    data = await asyncio.to_thread(Path(path).read_bytes)
    upload_id = new_id("upl")
    store = ObjectStore(settings)
    # Any key in the media bucket works; this layout keeps a platform's objects together.
    key = f"uploads/{tenant}/{upload_id}"
    await store.put_bytes(settings.bucket_media, key, data)
    event = UploadSubmitted(
        upload_id=upload_id,
        tenant=tenant,
        media_type=None,  # the fingerprint service sniffs the content
        object=ObjectRef(
            bucket=settings.bucket_media,
            key=key,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        ),
        metadata=UploadMetadata(external_id=external_id),
        submitted_at=utcnow(),
    )
    producer = new_producer(settings)
    await producer.start()
    try:
        envelope = make_envelope(event, producer="platform-direct", correlation_id=upload_id)
        await producer.send_and_wait(
            settings.topic(UPLOADS_SUBMITTED.name), encode_event(envelope), key=upload_id.encode()
        )
    finally:
        await producer.stop()
    return upload_id


def publish_file(path: str, *, tenant: str, external_id: str | None = None) -> str:
    return asyncio.run(publish_file_async(path, tenant=tenant, external_id=external_id))
