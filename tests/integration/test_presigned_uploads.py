"""Presigned PUT URLs against the real S3 server: a platform uploads one object without the
services' credentials, and an expired or altered URL is refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from contentmatch_ingest.routes.direct_uploads import _presigner
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore


@pytest.fixture
async def store(isolated: Settings) -> ObjectStore:
    s = ObjectStore(isolated)
    await s.ensure_buckets()
    return s


def _presign(settings: Settings, key: str, seconds: int) -> str:
    return _presigner(settings).presigned_put_object(
        settings.bucket_media, key, expires=timedelta(seconds=seconds)
    )


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_a_presigned_put_stores_exactly_that_object(store: ObjectStore) -> None:
    settings = store.settings
    url = _presign(settings, "uploads/tube/upl_a", 60)
    async with httpx.AsyncClient() as http:
        assert (await http.put(url, content=b"platform bytes")).status_code == 200
        # The URL names one key: it cannot write another (the signature covers the path).
        other = url.replace("/uploads/tube/upl_a?", "/uploads/label/upl_a?")
        assert (await http.put(other, content=b"x")).status_code == 403
        state = url.replace(f"/{settings.bucket_media}/", f"/{settings.bucket_state}/")
        assert (await http.put(state, content=b"x")).status_code == 403
    assert await store.get_bytes(settings.bucket_media, "uploads/tube/upl_a") == b"platform bytes"
    assert await store.get_bytes(settings.bucket_media, "uploads/label/upl_a") is None
    assert await store.get_bytes(settings.bucket_state, "uploads/tube/upl_a") is None


async def test_tampered_presigned_urls_are_refused(store: ObjectStore) -> None:
    settings = store.settings
    url = _presign(settings, "uploads/tube/upl_b", 60)
    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    forged = "0" * len(signature) if signature[0] != "0" else "1" * len(signature)
    async with httpx.AsyncClient() as http:
        for bad in (
            _with_query(url, **{"X-Amz-Signature": forged}),
            _with_query(url, **{"X-Amz-Expires": "604800"}),  # a longer life, same signature
        ):
            assert (await http.put(bad, content=b"x")).status_code == 403, bad
    assert await store.get_bytes(settings.bucket_media, "uploads/tube/upl_b") is None


async def test_an_expired_presigned_url_is_refused(store: ObjectStore) -> None:
    settings = store.settings
    url = _presign(settings, "uploads/tube/upl_c", 1)
    await asyncio.sleep(2.5)
    async with httpx.AsyncClient() as http:
        assert (await http.put(url, content=b"late")).status_code == 403
    assert await store.get_bytes(settings.bucket_media, "uploads/tube/upl_c") is None
