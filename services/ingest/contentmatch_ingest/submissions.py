"""Accepting a file: parse the multipart form, sniff, stream to S3, honour Idempotency-Key.

Shared by works and uploads; what differs (metadata model, event, ids) is passed in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from contentmatch_shared.http import ApiError
from contentmatch_shared.media import SNIFF_BYTES, Sniffed, sniff
from contentmatch_shared.storage import HashingReader, ObjectStore, ObjectTooLarge

M = TypeVar("M", bound=BaseModel)


@dataclass
class ParsedForm:
    file: UploadFile
    metadata_raw: str | None


async def parse_form(request: Request) -> ParsedForm:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data with a file field")
    # Starlette spools file parts to disk past 1 MiB, so a large file is never held in memory.
    form = await request.form(max_files=1, max_fields=10)
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise ApiError(422, "missing_file", "the multipart field 'file' is required")
    metadata = form.get("metadata")
    if metadata is not None and not isinstance(metadata, str):
        raise ApiError(422, "invalid_metadata", "'metadata' must be a JSON string field")
    return ParsedForm(file=file, metadata_raw=metadata)


def parse_metadata(raw: str | None, model: type[M], *, required: bool) -> M:
    if raw is None or not raw.strip():
        if required:
            raise ApiError(422, "invalid_metadata", "the multipart field 'metadata' is required")
        return model()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(422, "invalid_metadata", f"metadata is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_metadata", "metadata must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "metadata"
        raise ApiError(422, "invalid_metadata", f"{where}: {err.get('msg')}") from exc


async def sniff_upload(file: UploadFile) -> Sniffed:
    head = await file.read(SNIFF_BYTES)
    await file.seek(0)
    if not head:
        raise ApiError(422, "empty_file", "the file is empty")
    sniffed = sniff(head)
    if sniffed is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            "the file is neither a supported image (JPEG, PNG, GIF, WebP, BMP, TIFF) nor audio "
            "(WAV, FLAC, MP3, OGG, Opus, M4A/AAC, AIFF, WebM)",
        )
    return sniffed


async def store_file(
    store: ObjectStore, key: str, file: UploadFile, sniffed: Sniffed, limit: int
) -> HashingReader:
    try:
        return await store.put_stream(
            store.settings.bucket_media,
            key,
            file.file,
            content_type=sniffed.content_type,
            limit=limit,
        )
    except ObjectTooLarge as exc:
        await store.delete(store.settings.bucket_media, key)
        raise ApiError(413, "payload_too_large", f"the file is {exc}") from exc


def idempotency_digest(request: Request, route: str, tenant: str) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 characters")
    return hashlib.sha256(f"{tenant}\x00{route}\x00{key}".encode()).hexdigest()


def request_fingerprint(metadata: BaseModel, filename: str | None) -> str:
    """What identifies "the same request" for an Idempotency-Key, known before storing the file."""
    body: dict[str, Any] = {"metadata": metadata.model_dump(mode="json"), "filename": filename}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
