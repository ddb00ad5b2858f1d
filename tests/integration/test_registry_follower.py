"""The match index as derived state: rebuilt from the compacted registry topic, tombstones too."""

from __future__ import annotations

import asyncio
from typing import Any

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.catalog import WorkCatalog
from contentmatch_match.registry import RegistryFollower
from contentmatch_shared.events import (
    ObjectRef,
    WorkFingerprinted,
    WorkMetadata,
    encode_event,
    make_envelope,
    utcnow,
)
from contentmatch_shared.fingerprints import AudioFingerprint, ImageFingerprint
from contentmatch_shared.kafka.connection import new_producer
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import WORKS_REGISTRY
from tests.fixtures.images import make_image, to_bytes


def _entry(work_id: str, seed: int, title: str, fingerprint: Any = None) -> bytes:
    event = WorkFingerprinted(
        work_id=work_id,
        tenant="label",
        media_type=fingerprint.media_type if fingerprint else "image",
        object=ObjectRef(bucket="b", key=f"works/{work_id}"),
        metadata=WorkMetadata(title=title, policy="block"),
        fingerprint=fingerprint
        or fingerprint_image(to_bytes(make_image(seed, size=(320, 240)), "PNG")),
        fingerprinted_at=utcnow(),
    )
    return encode_event(make_envelope(event, producer="test", correlation_id=work_id))


async def _follow(settings: Settings) -> tuple[WorkCatalog, RegistryFollower, asyncio.Task[None]]:
    catalog = WorkCatalog()
    follower = RegistryFollower(settings, catalog)
    await follower.start()
    task = asyncio.create_task(follower.run())
    deadline = asyncio.get_running_loop().time() + 30
    while not follower.caught_up:
        assert asyncio.get_running_loop().time() < deadline, "follower never caught up"
        await asyncio.sleep(0.05)
    return catalog, follower, task


async def test_a_new_follower_rebuilds_the_latest_state_of_every_work(isolated: Settings) -> None:
    topic = isolated.topic(WORKS_REGISTRY.name)
    producer = new_producer(isolated, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, _entry("wrk_a", 1, "A v1"), key=b"wrk_a")
        await producer.send_and_wait(topic, _entry("wrk_b", 2, "B"), key=b"wrk_b")
        await producer.send_and_wait(topic, _entry("wrk_c", 3, "C"), key=b"wrk_c")
        await producer.send_and_wait(topic, _entry("wrk_a", 1, "A v2"), key=b"wrk_a")
        await producer.send_and_wait(topic, None, key=b"wrk_c")  # tombstone: withdrawn
        await producer.send_and_wait(topic, b"not an envelope", key=b"wrk_x")

        catalog, follower, task = await _follow(isolated)
        assert len(catalog) == 2
        assert catalog.get("wrk_a").metadata.title == "A v2"  # type: ignore[union-attr]
        assert catalog.get("wrk_c") is None
        assert follower.skipped == 1
        assert len(catalog.indexes["image"]) == 2
        query = fingerprint_image(to_bytes(make_image(2, size=(320, 240)), "JPEG", quality=60))
        assert [m.work_id for m in catalog.search("image", query)] == ["wrk_b"]
        withdrawn = fingerprint_image(to_bytes(make_image(3, size=(320, 240)), "PNG"))
        assert catalog.search("image", withdrawn) == []

        # It keeps following: a later registration is applied, and waiting for it works.
        await producer.send_and_wait(topic, _entry("wrk_d", 4, "D"), key=b"wrk_d")
        assert await follower.wait_until_current(timeout_s=10)
        assert catalog.get("wrk_d") is not None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await producer.stop()


async def test_records_the_index_cannot_apply_are_skipped_and_never_stop_the_follower(
    isolated: Settings,
) -> None:
    topic = isolated.topic(WORKS_REGISTRY.name)
    good = fingerprint_image(to_bytes(make_image(5, size=(320, 240)), "PNG"))
    no_hashes = ImageFingerprint(width=320, height=240, hashes={})
    short_pdq = good.model_copy(update={"hashes": {**good.hashes, "pdq": "ab"}})
    bad_orb = good.model_copy(update={"extra": {**good.extra, "orb": {"n": 3, "desc": "AA"}}})
    no_audio = AudioFingerprint(duration_s=3.0, chromaprint="", item_rate=8.08)
    producer = new_producer(isolated, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, _entry("wrk_ok", 5, "OK"), key=b"wrk_ok")
        await producer.send_and_wait(topic, _entry("wrk_e", 0, "E", no_hashes), key=b"wrk_e")
        await producer.send_and_wait(topic, _entry("wrk_p", 0, "P", short_pdq), key=b"wrk_p")
        await producer.send_and_wait(topic, _entry("wrk_o", 0, "O", bad_orb), key=b"wrk_o")
        await producer.send_and_wait(topic, _entry("wrk_a", 0, "A", no_audio), key=b"wrk_a")
        # A work whose latest record is unusable leaves the index (as it will after compaction).
        await producer.send_and_wait(topic, _entry("wrk_gone", 6, "G"), key=b"wrk_gone")
        await producer.send_and_wait(topic, _entry("wrk_gone", 0, "G", no_hashes), key=b"wrk_gone")

        catalog, follower, task = await _follow(isolated)
        assert follower.skipped == 5
        assert sorted(e for e in ("wrk_ok", "wrk_gone") if catalog.get(e)) == ["wrk_ok"]
        assert len(catalog.indexes["image"]) == 1

        # Still following after all that: a good record later is applied.
        await producer.send_and_wait(topic, _entry("wrk_e", 7, "E fixed"), key=b"wrk_e")
        assert await follower.wait_until_current(timeout_s=10)
        assert not task.done()
        assert catalog.get("wrk_e") is not None
        query = fingerprint_image(to_bytes(make_image(7, size=(320, 240)), "JPEG", quality=70))
        assert [m.work_id for m in catalog.search("image", query)] == ["wrk_e"]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await producer.stop()
