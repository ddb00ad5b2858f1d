"""``POST /v1/uploads/direct``: a platform uploads without sending the bytes through HTTP.

The platform gets an upload id, a presigned PUT URL for ``uploads/<tenant>/<upload_id>`` in the
media bucket and an upload token; it PUTs the bytes, then publishes ``upload.submitted`` with
the token on ``uploads.submitted`` as its own Kafka principal. It never holds the services' S3
credentials, and the token is all the consumers believe (``upload_tokens.py``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from minio import Minio
from pydantic import BaseModel

from contentmatch_ingest.backpressure import refuse_when_backlogged
from contentmatch_shared.auth import CurrentKey, require_role
from contentmatch_shared.events import new_id
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import UPLOADS_SUBMITTED
from contentmatch_shared.upload_tokens import new_grant, sign_grant

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])


class DirectUpload(BaseModel):
    upload_id: str
    bucket: str
    key: str
    put_url: str  # PUT the bytes here (no credentials needed) before put_expires_at
    put_expires_at: datetime
    upload_token: str  # the event's payload.upload_token; publish before token_expires_at
    token_expires_at: datetime
    topic: str


def _presigner(settings: Settings) -> Minio:
    # Signing is offline (the region is given), so the endpoint may be one only platforms reach.
    return Minio(
        settings.s3_presign_endpoint or settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=settings.s3_secure,
        region=settings.s3_region,
    )


@router.post(
    "/direct", status_code=201, response_model=DirectUpload, operation_id="create_direct_upload"
)
async def create_direct_upload(request: Request, api_key: CurrentKey) -> Any:
    require_role(api_key, "platform")
    refuse_when_backlogged(request)
    settings: Settings = request.app.state.settings
    upload_id = new_id("upl")
    grant = new_grant(settings, api_key.tenant, upload_id)
    ttl = timedelta(seconds=settings.upload_url_ttl_s)
    put_url = await asyncio.to_thread(
        _presigner(settings).presigned_put_object, grant.bucket, grant.key, expires=ttl
    )
    token = sign_grant(grant, request.app.state.upload_token_secret)
    return DirectUpload(
        upload_id=upload_id,
        bucket=grant.bucket,
        key=grant.key,
        put_url=put_url,
        put_expires_at=datetime.now(UTC) + ttl,
        upload_token=token,
        token_expires_at=datetime.fromtimestamp(grant.expires_at, UTC),
        topic=settings.topic(UPLOADS_SUBMITTED.name),
    )
