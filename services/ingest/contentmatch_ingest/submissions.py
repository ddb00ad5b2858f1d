"""Accepting a file: parse the multipart form, sniff, stream to S3, honour Idempotency-Key.

Shared by works and uploads; what differs (metadata model, event, ids) is passed in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from contentmatch_ingest.records import RecordStore
from contentmatch_shared.events import ObjectRef, UploadMetadata, WorkMetadata, new_id
from contentmatch_shared.http import ApiError, unavailable
from contentmatch_shared.identifiers import (
    InvalidMetadata,
    normalize_identifiers,
    normalize_territories,
    normalize_territory,
)
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
    state = request.app.state
    # A file that could not be published is not worth reading: refuse it before its body.
    if not await state.runtime.kafka_reachable():
        raise unavailable("Kafka", state.settings.unavailable_retry_after_s)
    # Starlette spools file parts to disk past 1 MiB, so a large file is never held in memory.
    form = await request.form(max_files=1, max_fields=10)
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise ApiError(422, "missing_file", "the multipart field 'file' is required")
    metadata = form.get("metadata")
    if metadata is not None and not isinstance(metadata, str):
        raise ApiError(422, "invalid_metadata", "'metadata' must be a JSON string field")
    return ParsedForm(file=file, metadata_raw=metadata)


def parse_metadata(raw: str | None, model: type[M], *, required: bool, max_bytes: int) -> M:
    """The metadata field, validated (sizes, identifiers, territories) and normalized."""
    if raw is None or not raw.strip():
        if required:
            raise ApiError(422, "invalid_metadata", "the multipart field 'metadata' is required")
        return model()
    if len(raw.encode()) > max_bytes:
        raise ApiError(422, "metadata_too_large", f"the metadata field exceeds {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(422, "invalid_metadata", f"metadata is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_metadata", "metadata must be a JSON object")
    try:
        metadata = model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "metadata"
        raise ApiError(422, "invalid_metadata", f"{where}: {err.get('msg')}") from exc
    try:
        _normalize(metadata)
    except InvalidMetadata as exc:
        raise ApiError(422, exc.code, str(exc)) from exc
    return metadata


def _normalize(metadata: BaseModel) -> None:
    if isinstance(metadata, WorkMetadata):
        metadata.identifiers = normalize_identifiers(metadata.identifiers)
        metadata.territories = normalize_territories(metadata.territories)
    elif isinstance(metadata, UploadMetadata) and metadata.territory is not None:
        metadata.territory = normalize_territory(metadata.territory, "territory")


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


@dataclass
class IdempotencyGuard:
    """``Idempotency-Key`` for one POST: replays the first response, refuses a different request.

    "The same request" is judged on the metadata and filename, known before the file is stored,
    so a replay never stores the bytes twice.

    Two requests with the same key can also arrive together (a client retrying on a timeout
    while the first is still streaming), or the first can die between storing and
    remembering its response. Neither must create a second work: the id is derived from the
    key (``new_id``), so both write the same records and publish the same event, which every
    consumer handles idempotently. S3 has no portable conditional write to claim a key with.
    Their media keys carry the request's hash, so that a key misused concurrently for two
    different files still leaves each record pointing at its own bytes.
    """

    records: RecordStore
    tenant: str
    digest: str | None
    request_hash: str

    @classmethod
    def for_request(
        cls, request: Request, records: RecordStore, route: str, tenant: str, form: ParsedForm,
        metadata: BaseModel,
    ) -> IdempotencyGuard:  # fmt: skip
        key = request.headers.get("idempotency-key")
        digest = None
        if key is not None:
            if not 1 <= len(key) <= 255:
                raise ApiError(
                    400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 characters"
                )
            digest = hashlib.sha256(f"{tenant}\x00{route}\x00{key}".encode()).hexdigest()
        body = {"metadata": metadata.model_dump(mode="json"), "filename": form.file.filename}
        request_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return cls(records, tenant, digest, request_hash)

    def new_id(self, prefix: str) -> str:
        """A fresh id, or with a key the id derived from it (same tenant, route and key: same
        id, as long and as random-looking as ``new_id``'s)."""
        return f"{prefix}_{self.digest[:32]}" if self.digest else new_id(prefix)

    def media_key(self, base: str) -> str:
        return f"{base}-{self.request_hash[:16]}" if self.digest else base

    async def replay(self, response: Response) -> dict[str, Any] | None:
        if not self.digest:
            return None
        prior = await self.records.idempotent_response(self.tenant, self.digest)
        if prior is None:
            return None
        if prior["request"] != self.request_hash:
            raise ApiError(
                409, "idempotency_key_reused", "Idempotency-Key was used for another request"
            )
        response.headers["Idempotent-Replayed"] = "true"
        return dict(prior["response"])

    async def remember(self, body: dict[str, Any]) -> None:
        if self.digest:
            await self.records.remember_response(
                self.tenant, self.digest, {"request": self.request_hash, "response": body}
            )


async def store_media(request: Request, form: ParsedForm, key: str) -> tuple[Sniffed, ObjectRef]:
    """Sniff the file, stream it to the media bucket, and describe what was stored."""
    state = request.app.state
    store: ObjectStore = state.store
    sniffed = await sniff_upload(form.file)
    stored = await store_file(store, key, form.file, sniffed, state.settings.max_upload_bytes)
    ref = ObjectRef(
        bucket=store.settings.bucket_media,
        key=key,
        size=stored.size,
        sha256=stored.sha256,
        content_type=sniffed.content_type,
    )
    return sniffed, ref
