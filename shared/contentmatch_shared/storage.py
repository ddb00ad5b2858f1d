"""Object storage through the ``minio`` SDK (any S3 endpoint: MinIO, S3Proxy, AWS).

The SDK is synchronous; every call here runs in a worker thread so the event loop stays free.
Keys are always derived from ids, so writing the same thing twice overwrites, never duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

import certifi
import urllib3
from minio import Minio
from minio.error import S3Error

from contentmatch_shared.settings import Settings

PART_SIZE = 10 * 1024 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}


class ObjectTooLarge(Exception):
    """The stream went past the size limit while being stored."""


class HashingReader(io.RawIOBase):
    """Wraps a binary stream: counts bytes, computes sha256, enforces a size limit."""

    def __init__(self, stream: IO[bytes], limit: int | None = None) -> None:
        self._stream = stream
        self._limit = limit
        self.size = 0
        self._sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        chunk = self._stream.read(n)
        self.size += len(chunk)
        if self._limit is not None and self.size > self._limit:
            raise ObjectTooLarge(f"larger than {self._limit} bytes")
        self._sha.update(chunk)
        return chunk

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


def _bounded_pool(settings: Settings) -> urllib3.PoolManager:
    """The SDK's pool with bounded waits: its defaults (5 minutes per read, 5 retries) turn an
    S3 outage into requests that hang; these fail fast enough to answer 503."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(
            connect=settings.s3_connect_timeout_s, read=settings.s3_read_timeout_s
        ),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        # A read that timed out is not retried here: a hung server costs one read timeout.
        retries=urllib3.Retry(
            total=settings.s3_retries,
            read=0,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
        ),
    )


class ObjectStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
            http_client=_bounded_pool(settings),
        )

    # -- lifecycle ---------------------------------------------------------------------------
    async def ensure_buckets(self) -> None:
        for bucket in (
            self.settings.bucket_media,
            self.settings.bucket_state,
            self.settings.bucket_reports,
        ):
            await asyncio.to_thread(self._ensure_bucket, bucket)

    def _ensure_bucket(self, bucket: str) -> None:
        if not self.client.bucket_exists(bucket):
            try:
                self.client.make_bucket(bucket)
            except S3Error as exc:  # a concurrent replica created it
                if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    async def ping(self) -> None:
        await asyncio.to_thread(self.client.bucket_exists, self.settings.bucket_state)

    # -- writes ------------------------------------------------------------------------------
    async def put_stream(
        self,
        bucket: str,
        key: str,
        stream: IO[bytes],
        *,
        content_type: str = "application/octet-stream",
        limit: int | None = None,
    ) -> HashingReader:
        """Store a stream of unknown length in multipart chunks; returns its size and sha256."""
        reader = HashingReader(stream, limit)
        await asyncio.to_thread(
            self.client.put_object,
            bucket,
            key,
            reader,
            length=-1,
            part_size=PART_SIZE,
            content_type=content_type,
        )
        return reader

    async def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        await asyncio.to_thread(
            self.client.put_object,
            bucket,
            key,
            io.BytesIO(data),
            length=len(data),
            content_type=content_type,
        )

    async def put_json(self, bucket: str, key: str, value: Any) -> None:
        data = json.dumps(value, separators=(",", ":"), default=str).encode()
        await self.put_bytes(bucket, key, data, "application/json")

    async def delete(self, bucket: str, key: str) -> None:
        await asyncio.to_thread(self.client.remove_object, bucket, key)

    # -- reads -------------------------------------------------------------------------------
    async def get_bytes(self, bucket: str, key: str) -> bytes | None:
        return await asyncio.to_thread(self.get_bytes_sync, bucket, key)

    def get_bytes_sync(self, bucket: str, key: str) -> bytes | None:
        try:
            response = self.client.get_object(bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    async def get_json(self, bucket: str, key: str) -> Any | None:
        data = await self.get_bytes(bucket, key)
        return None if data is None else json.loads(data)

    async def exists(self, bucket: str, key: str) -> bool:
        def stat() -> bool:
            try:
                self.client.stat_object(bucket, key)
                return True
            except S3Error as exc:
                if exc.code in _MISSING:
                    return False
                raise

        return await asyncio.to_thread(stat)

    async def download_to(self, bucket: str, key: str, path: str) -> None:
        await asyncio.to_thread(self.client.fget_object, bucket, key, path)

    async def list_keys(
        self, bucket: str, prefix: str, *, start_after: str | None = None, limit: int = 1000
    ) -> list[str]:
        """Keys under ``prefix`` in lexicographic order after ``start_after``, at most ``limit``."""

        def run() -> list[str]:
            out: list[str] = []
            objects: Iterator[Any] = self.client.list_objects(
                bucket, prefix=prefix, recursive=True, start_after=start_after or ""
            )
            for obj in objects:
                out.append(obj.object_name)
                if len(out) >= limit:
                    break
            return out

        return await asyncio.to_thread(run)

    async def list_modified(
        self, bucket: str, prefix: str, *, limit: int = 10_000
    ) -> list[tuple[str, datetime]]:
        """Keys under ``prefix`` with when each was last written, at most ``limit``."""

        def run() -> list[tuple[str, datetime]]:
            out: list[tuple[str, datetime]] = []
            for obj in self.client.list_objects(bucket, prefix=prefix, recursive=True):
                out.append((obj.object_name, obj.last_modified))
                if len(out) >= limit:
                    break
            return out

        return await asyncio.to_thread(run)
