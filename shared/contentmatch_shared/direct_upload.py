"""The high-volume path for platforms: ask for a presigned upload, PUT the bytes, publish
``upload.submitted`` with the upload token.

This is what ``contentmatch publish-upload`` runs, and the example the README points to. A
platform needs its platform API key (for ``POST /v1/uploads/direct``) and its own Kafka
principal (``contentmatch platform add``: it may only write ``uploads.submitted``); never the
services' S3 credentials. It needs only ``httpx``, ``aiokafka`` and the event schema.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from contentmatch_shared.events import (
    ObjectRef,
    UploadMetadata,
    UploadSubmitted,
    encode_event,
    make_envelope,
    utcnow,
)
from contentmatch_shared.kafka.connection import new_producer
from contentmatch_shared.settings import Settings, get_settings


async def request_upload(client: httpx.AsyncClient, ingest_url: str) -> dict[str, Any]:
    """``POST /v1/uploads/direct``: upload id, presigned PUT URL and upload token."""
    response = await client.post(f"{ingest_url.rstrip('/')}/v1/uploads/direct")
    response.raise_for_status()
    return dict(response.json())


def upload_event(grant: dict[str, Any], external_id: str | None = None) -> UploadSubmitted:
    """The event a platform publishes; the services believe only what the token proves."""
    return UploadSubmitted(
        upload_id=grant["upload_id"],
        tenant=grant["key"].split("/")[1],  # uploads/<tenant>/<upload_id>
        media_type=None,  # the fingerprint service sniffs the content
        object=ObjectRef(bucket=grant["bucket"], key=grant["key"]),
        metadata=UploadMetadata(external_id=external_id),
        submitted_at=utcnow(),
        upload_token=grant["upload_token"],
    )


async def publish_file_async(
    path: str,
    *,
    api_key: str,
    ingest_url: str,
    external_id: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Upload ``path`` as the platform ``api_key`` belongs to; the Kafka principal comes from
    ``settings`` (``CM_KAFKA_USERNAME`` / ``CM_KAFKA_PASSWORD[_FILE]``). Returns the upload id."""
    settings = settings or get_settings()
    data = await asyncio.to_thread(Path(path).read_bytes)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        grant = await request_upload(client, ingest_url)
    # The presigned URL is the credential: the API key is not sent to S3.
    async with httpx.AsyncClient(timeout=300) as s3:
        (await s3.put(grant["put_url"], content=data)).raise_for_status()
    event = upload_event(grant, external_id)
    producer = new_producer(settings)
    await producer.start()
    try:
        envelope = make_envelope(event, producer="platform-direct", correlation_id=event.upload_id)
        await producer.send_and_wait(
            grant["topic"], encode_event(envelope), key=event.upload_id.encode()
        )
    finally:
        await producer.stop()
    return event.upload_id


def publish_file(
    path: str, *, api_key: str, ingest_url: str, external_id: str | None = None
) -> str:
    return asyncio.run(
        publish_file_async(path, api_key=api_key, ingest_url=ingest_url, external_id=external_id)
    )
