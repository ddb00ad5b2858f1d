"""The fingerprint consumer: submitted works and uploads in, fingerprints (or a failure) out."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord
from minio.error import S3Error

from contentmatch_fingerprint import jobs
from contentmatch_fingerprint.signals.provenance import (
    failed_provenance,
    with_fingerprint_evidence,
)
from contentmatch_shared import metrics
from contentmatch_shared.decode_sandbox import SandboxPool
from contentmatch_shared.errors import MediaError
from contentmatch_shared.events import (
    Envelope,
    MediaFailed,
    ObjectRef,
    UploadFingerprinted,
    UploadSubmitted,
    WorkFingerprinted,
    WorkSubmitted,
    utcnow,
)
from contentmatch_shared.fingerprints import indexable_problem
from contentmatch_shared.kafka.failures import PoisonRecord
from contentmatch_shared.provenance import Provenance
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.storage import ObjectStore
from contentmatch_shared.topics import (
    MEDIA_FAILED,
    UPLOADS_FINGERPRINTED,
    UPLOADS_SUBMITTED,
    WORKS_REGISTRY,
    WORKS_SUBMITTED,
)
from contentmatch_shared.upload_tokens import (
    UploadRefused,
    load_secret,
    published_at,
    verify_upload,
)

log = logging.getLogger(__name__)

SERVICE = "fingerprint"
_CHUNK_BYTES = 1024 * 1024
INPUT_TOPICS = [WORKS_SUBMITTED, UPLOADS_SUBMITTED]


class Fingerprinter:
    """Handler: download the object, fingerprint it in the decoding sandbox, publish the result.

    Idempotent: a replay recomputes the same fingerprint and republishes it under the same key.
    Media that cannot be fingerprinted becomes a ``media.failed`` event (not a dead letter: the
    record is fine, the file is not), and so does a decode stopped by one of the sandbox's limits.
    """

    def __init__(self, runtime: ServiceRuntime, pool: SandboxPool) -> None:
        self._runtime = runtime
        self._pool = pool
        self._upload_secret = load_secret(runtime.settings)

    async def __call__(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        payload = envelope.payload
        if isinstance(payload, WorkSubmitted):
            subject, subject_id = "work", payload.work_id
        elif isinstance(payload, UploadSubmitted):
            payload = await self._trusted(payload, envelope, record)
            subject, subject_id = "upload", payload.upload_id
        else:
            return
        try:
            media_type, fingerprint, measured, provenance = await self._fingerprint(
                payload.object, payload.media_type
            )
            if problem := indexable_problem(fingerprint):
                # Never publish what match cannot apply: the registry is replayed on every start.
                raise MediaError("fingerprint_invalid", f"unusable fingerprint: {problem}")
        except MediaError as exc:
            failure = MediaFailed(
                subject=subject,
                subject_id=subject_id,
                tenant=payload.tenant,
                stage=SERVICE,
                code=exc.code,
                message=exc.message,
                failed_at=utcnow(),
            )
            log.info("%s %s failed: %s", subject, subject_id, exc.message)
            await self._runtime.producer.publish(
                MEDIA_FAILED, subject_id, failure, correlation_id=envelope.correlation_id
            )
            return
        if isinstance(payload, WorkSubmitted):
            out: Any = WorkFingerprinted(
                work_id=payload.work_id,
                tenant=payload.tenant,
                media_type=media_type,
                object=payload.object,
                metadata=payload.metadata,
                fingerprint=fingerprint,
                fingerprinted_at=utcnow(),
                provenance=provenance,
            )
            topic = WORKS_REGISTRY
        else:
            out = UploadFingerprinted(
                upload_id=payload.upload_id,
                tenant=payload.tenant,
                media_type=media_type,
                object=measured,
                metadata=payload.metadata,
                fingerprint=fingerprint,
                submitted_at=payload.submitted_at,
                provenance=provenance,
            )
            topic = UPLOADS_FINGERPRINTED
        await self._runtime.producer.publish(
            topic, subject_id, out, correlation_id=envelope.correlation_id
        )

    async def _trusted(
        self, event: UploadSubmitted, envelope: Envelope[Any], record: ConsumerRecord
    ) -> UploadSubmitted:
        """The event as its upload token proves it; a refused one is reported on
        ``media.failed`` and dead-lettered (it will never pass)."""
        settings = self._runtime.settings
        try:
            return verify_upload(event, settings, self._upload_secret, at=published_at(record))
        except UploadRefused as exc:
            failure = MediaFailed(
                subject="upload",
                subject_id=event.upload_id[:200],
                tenant=event.tenant[:200],
                stage=SERVICE,
                code=exc.code,
                message=exc.message,
                failed_at=utcnow(),
            )
            log.warning("refused upload.submitted %r: %s", event.upload_id[:100], exc)
            await self._runtime.producer.publish(
                MEDIA_FAILED, failure.subject_id, failure, correlation_id=envelope.correlation_id
            )
            raise PoisonRecord(f"upload refused: {exc}") from exc

    async def _fingerprint(
        self, obj: ObjectRef, media_type: str | None
    ) -> tuple[str, Any, ObjectRef, Provenance]:
        """Media type, fingerprint, ``obj`` with the sha256 and size of the bytes read, and
        the file's provenance."""
        store = self._runtime.store
        limit = self._runtime.settings.max_upload_bytes
        with tempfile.TemporaryDirectory(prefix="cm-fp-") as tmp:
            path = str(Path(tmp) / "media")
            digest, size = await asyncio.to_thread(_download, store, obj, path, limit)
            measured = obj.model_copy(update={"sha256": digest, "size": size})
            if media_type is None:
                media_type = await asyncio.to_thread(jobs.sniff_file, path)  # 64 bytes, no decode
                if media_type is None:
                    raise MediaError("unsupported_media_type", "neither an image nor audio")
            started = time.perf_counter()
            fingerprint = await self._pool.run(jobs.fingerprint_file, path, media_type)
            metrics.FINGERPRINT_SECONDS.labels(media_type).observe(time.perf_counter() - started)
            provenance = await self._provenance(path, media_type, fingerprint)
            return media_type, fingerprint, measured, provenance

    async def _provenance(self, path: str, media_type: str, fingerprint: Any) -> Provenance:
        """Read in a sandbox job of its own: a file whose provenance cannot be read (a limit,
        a crash) is still fingerprinted, with the failure in its provenance."""
        started = time.perf_counter()
        try:
            provenance = await self._pool.run(
                jobs.read_provenance_file, path, media_type, self._pool.limits
            )
        except MediaError as exc:
            log.info("provenance of %s not read: %s", path, exc.message)
            provenance = failed_provenance("sandbox", exc)
        provenance = await asyncio.to_thread(with_fingerprint_evidence, provenance, fingerprint)
        metrics.PROVENANCE_SECONDS.labels(media_type).observe(time.perf_counter() - started)
        for piece in provenance.evidence:
            metrics.PROVENANCE_EVIDENCE.labels(piece.source, piece.kind, piece.strength).inc()
        return provenance


def _download(store: ObjectStore, obj: ObjectRef, path: str, limit: int) -> tuple[str, int]:
    """The object into ``path`` in one GET, hashed on the way; its sha256 and size.

    Raises MediaError ``object_not_found``, or ``payload_too_large`` past ``limit`` bytes (from
    the announced length, else while reading)."""
    try:
        response = store.client.get_object(obj.bucket, obj.key)
    except S3Error as exc:
        if exc.code in {"NoSuchKey", "NoSuchBucket", "NoSuchObject"}:
            raise MediaError("object_not_found", f"no object s3://{obj.bucket}/{obj.key}") from exc
        raise
    try:
        announced = response.headers.get("content-length")
        if announced is not None and int(announced) > limit:
            raise MediaError("payload_too_large", f"object is {announced} bytes > {limit}")
        sha, size = hashlib.sha256(), 0
        with open(path, "wb") as f:
            for chunk in response.stream(_CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise MediaError("payload_too_large", f"object is over {limit} bytes")
                sha.update(chunk)
                f.write(chunk)
        return sha.hexdigest(), size
    finally:
        response.close()
        response.release_conn()
