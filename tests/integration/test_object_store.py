"""The S3 wrapper against the real S3 server (S3Proxy), as the services use it."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore, ObjectTooLarge


@pytest.fixture
async def store(isolated: Settings) -> ObjectStore:
    s = ObjectStore(isolated)
    await s.ensure_buckets()
    await s.ensure_buckets()  # idempotent
    return s


async def test_streams_in_parts_and_records_size_and_sha256(store: ObjectStore) -> None:
    data = os.urandom(23 * 1024 * 1024 + 17)  # three multipart parts
    bucket = store.settings.bucket_media
    stored = await store.put_stream(bucket, "big/object", io.BytesIO(data))
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.get_bytes(bucket, "big/object") == data


async def test_a_stream_past_the_limit_is_refused(store: ObjectStore) -> None:
    with pytest.raises(ObjectTooLarge):
        await store.put_stream(
            store.settings.bucket_media, "too/big", io.BytesIO(b"x" * 5000), limit=4096
        )


async def test_json_missing_and_listing_pages(store: ObjectStore) -> None:
    bucket = store.settings.bucket_state
    assert await store.get_json(bucket, "nope.json") is None
    assert not await store.exists(bucket, "nope.json")
    for i in range(7):
        await store.put_json(bucket, f"list/{i:03d}.json", {"i": i})
    first = await store.list_keys(bucket, "list/", limit=3)
    assert first == ["list/000.json", "list/001.json", "list/002.json"]
    rest = await store.list_keys(bucket, "list/", start_after=first[-1], limit=10)
    assert rest == [f"list/{i:03d}.json" for i in range(3, 7)]
    assert await store.get_json(bucket, "list/004.json") == {"i": 4}


async def test_wrong_credentials_are_refused(isolated: Settings) -> None:
    intruder = ObjectStore(isolated.model_copy(update={"s3_secret_key": "wrong-secret"}))
    with pytest.raises(Exception, match=r"SignatureDoesNotMatch|AccessDenied"):
        await intruder.ensure_buckets()
