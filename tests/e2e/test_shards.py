"""Shards end to end. The suite runs on a match of ``CM_TEST_MATCH_SHARDS`` shards (2 unless
set); here a fixed set of works and uploads checks that the merged verdicts equal what one
single index, built in this process from the same registry topic, answers; and a replica
killed with ``kill -9`` comes back from its snapshots, reading only the registry after them,
with the same verdicts."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka import TopicPartition

from contentmatch_match.catalog import WorkCatalog
from contentmatch_match.registry import RegistryFollower
from contentmatch_match.result_bounds import bound_result
from contentmatch_shared.events import UploadFingerprinted, UploadMatched, decode_event
from contentmatch_shared.kafka.connection import new_consumer
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import UPLOADS_FINGERPRINTED, UPLOADS_MATCHED, WORKS_REGISTRY
from tests.e2e.conftest import Tenants
from tests.fixtures import audio
from tests.fixtures.images import make_image, to_bytes, transform_bytes
from tests.support.stack import Stack

SHARDS = int(os.environ.get("CM_TEST_MATCH_SHARDS", "2"))
IMAGE_WORKS = range(8400, 8410)
IMAGE_STRANGERS = (8450, 8451, 8452, 8453)
COPY_TRANSFORMS = ("jpeg_q75", "resize_half", "webp_small")
AUDIO_WORKS = (8480, 8481)
TAIL_WORKS = (8420, 8421, 8422)  # registered after the snapshot of the restart test
SR = audio.DEFAULT_SR


def _wav(samples: np.ndarray, path: Path) -> bytes:
    audio.write_wav(path, samples, SR)
    return path.read_bytes()


@pytest.fixture(scope="module")
def fixed_set(tenants: Tenants, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Works (images, tracks) registered and uploads (copies, excerpts, strangers) matched."""
    tmp = tmp_path_factory.mktemp("shards")
    label = tenants.label
    works: dict[int, str] = {}
    for seed in IMAGE_WORKS:
        data = to_bytes(make_image(seed), "PNG")
        works[seed] = label.register_work(data, f"s{seed}.png", {"title": f"Shard {seed}"})
    tracks = {seed: audio.make_track(seed, 30.0, SR) for seed in AUDIO_WORKS}
    for seed, samples in tracks.items():
        data = _wav(samples, tmp / f"t{seed}.wav")
        works[seed] = label.register_work(data, f"t{seed}.wav", {"title": f"Track {seed}"})
    for work_id in works.values():
        assert label.wait_work(work_id)["status"] == "indexed"
    uploads: dict[str, str] = {}  # upload id -> what it is
    for i, seed in enumerate(IMAGE_WORKS):
        data, ext = transform_bytes(make_image(seed), COPY_TRANSFORMS[i % 3], seed=seed)
        uploads[tenants.tube.submit_upload(data, f"c{seed}.{ext}")] = f"copy of {seed}"
    for seed in IMAGE_STRANGERS:
        data = to_bytes(make_image(seed), "JPEG", quality=85)
        uploads[tenants.tube.submit_upload(data, f"x{seed}.jpg")] = f"stranger {seed}"
    for seed, samples in tracks.items():
        clip = audio.excerpt(samples, SR, 8.0, 10.0)
        data = _wav(clip, tmp / f"clip{seed}.wav")
        uploads[tenants.tube.submit_upload(data, f"clip{seed}.wav")] = f"excerpt of {seed}"
    done = {u: tenants.tube.wait_upload(u) for u in uploads}
    return {"works": works, "uploads": uploads, "done": done}


def _records(settings: Settings, topic: str, keys: set[str]) -> dict[str, Any]:
    """The latest event of each key of ``keys`` on ``topic`` (read from its beginning)."""

    async def read() -> dict[str, Any]:
        consumer = new_consumer(settings, group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        try:
            name = settings.topic(topic)
            while not consumer.partitions_for_topic(name):
                await consumer._client.force_metadata_update()
            parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            found: dict[str, Any] = {}
            while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for rs in batch.values():
                    for r in rs:
                        if r.key and r.key.decode() in keys and r.value is not None:
                            found[r.key.decode()] = decode_event(r.value).payload
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def _single_index(settings: Settings) -> WorkCatalog:
    """One unsharded catalog of the whole registry, as a one-shard match holds it."""

    async def build() -> WorkCatalog:
        catalog = WorkCatalog()
        follower = RegistryFollower(settings, catalog)
        await follower.start()
        task = asyncio.create_task(follower.run())
        try:
            while not follower.caught_up:
                assert not task.done(), task
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return catalog

    return asyncio.run(build())


def _verdict(matched: UploadMatched) -> list[dict[str, Any]]:
    return [
        m.model_dump(include={"work_id", "score", "signal", "distance", "segments", "evidence"})
        for m in matched.matches
    ]


def _works(verdict: list[dict[str, Any]]) -> list[str]:
    return [m["work_id"] for m in verdict]


def test_merged_verdicts_equal_a_single_index(
    fixed_set: dict[str, Any], settings: Settings
) -> None:
    uploads = set(fixed_set["uploads"])
    fingerprinted = _records(settings, UPLOADS_FINGERPRINTED.name, uploads)
    matched = _records(settings, UPLOADS_MATCHED.name, uploads)
    assert set(fingerprinted) == set(matched) == uploads
    single = _single_index(settings)
    differ = {}
    for upload_id, what in fixed_set["uploads"].items():
        fp: UploadFingerprinted = fingerprinted[upload_id]
        alone = bound_result(
            matched[upload_id].model_copy(
                update={"matches": single.search(fp.media_type, fp.fingerprint)}
            )
        )
        merged = _verdict(matched[upload_id])
        if what.startswith("excerpt"):
            # Audio segments are trimmed against other works' overlapping segments, which a
            # shard sees only for its own works (docs/sharding.md): the works must agree.
            merged, alone_verdict = _works(merged), _works(_verdict(alone))
        else:
            alone_verdict = _verdict(alone)
        if alone_verdict != merged:
            differ[what] = (merged, alone_verdict)
    assert not differ, differ
    assert {m.registry_size for m in matched.values()} <= set(range(1, len(single) + 1))
    # The fixed set itself: copies and excerpts found, strangers not.
    works = fixed_set["works"]
    for upload_id, what in fixed_set["uploads"].items():
        found = [m["work_id"] for m in fixed_set["done"][upload_id]["matches"]]
        if what.startswith("stranger"):
            assert found == [], what
        else:
            assert found[:1] == [works[int(what.rsplit(" ", 1)[1])]], (what, found)


def _registry_ends(settings: Settings) -> dict[int, int]:
    async def ends() -> dict[int, int]:
        consumer = new_consumer(settings, group_id=None)
        await consumer.start()
        try:
            name = settings.topic(WORKS_REGISTRY.name)
            while not consumer.partitions_for_topic(name):
                await consumer._client.force_metadata_update()
            parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
            return {tp.partition: off for tp, off in (await consumer.end_offsets(parts)).items()}
        finally:
            await consumer.stop()

    return asyncio.run(ends())


def test_a_killed_replica_comes_back_from_its_snapshots_with_the_same_verdicts(
    stack: Stack, tenants: Tenants, settings: Settings, fixed_set: dict[str, Any]
) -> None:
    index_url = f"{stack.url('match')}/v1/index"
    written = tenants.operator._call("POST", f"{index_url}/snapshots")["snapshots"]
    assert sorted(w["shard"] for w in written) == list(range(SHARDS))
    snapshot_of = {w["shard"]: w["key"] for w in written}
    tail = {}
    for seed in TAIL_WORKS:
        data = to_bytes(make_image(seed), "PNG")
        tail[seed] = tenants.label.register_work(data, f"tail{seed}.png", {"title": f"T{seed}"})
    for work_id in tail.values():
        assert tenants.label.wait_work(work_id)["status"] == "indexed"
    before = tenants.operator._call("GET", index_url)

    stack.kill("match")
    started = time.monotonic()
    stack.start("match")
    ready_s = time.monotonic() - started
    after = tenants.operator._call("GET", index_url)
    ends = _registry_ends(settings)

    assert after["works"] == before["works"]
    # The same items (a restored index holds no spare capacity: its memory may be lower).
    assert {k: v["items"] for k, v in after["indexes"].items()} == {
        k: v["items"] for k, v in before["indexes"].items()
    }
    starts = {}
    for shard in after["served"]:
        assert shard["snapshot"] is not None, shard["snapshot_problem"]
        assert shard["snapshot"]["key"] == snapshot_of[shard["shard"]]
        for p, off in shard["snapshot"]["offsets"].items():
            starts[int(p)] = min(starts.get(int(p), off), off)
    # Only the registry after the snapshots was read: the tail (and nothing before it).
    tail_records = sum(ends[p] - starts[p] for p in ends)
    assert after["registry_records_read"] == tail_records
    assert tail_records < sum(ends.values())
    assert sum(s["replayed_records"] for s in after["served"]) >= len(TAIL_WORKS)
    print(
        f"\nrestart to ready from snapshots: {ready_s:.1f}s (follower {after['ready_after_s']}s, "
        f"loads {[s['snapshot']['load_s'] for s in after['served']]}s), "
        f"{tail_records} of {sum(ends.values())} registry records replayed, "
        f"{after['works']} works"
    )

    # The same verdicts as before the kill, and the tail's works are found too.
    again = {}
    for i, seed in enumerate(IMAGE_WORKS[:3]):
        data, ext = transform_bytes(make_image(seed), COPY_TRANSFORMS[i % 3], seed=seed)
        again[seed] = tenants.tube.submit_upload(data, f"again{seed}.{ext}")
    first = {
        int(what.rsplit(" ", 1)[1]): fixed_set["done"][u]
        for u, what in fixed_set["uploads"].items()
        if what.startswith("copy")
    }
    for seed, upload_id in again.items():
        now = tenants.tube.wait_upload(upload_id)
        assert [(m["work_id"], m["score"]) for m in now["matches"]] == [
            (m["work_id"], m["score"]) for m in first[seed]["matches"]
        ]
    for seed, work_id in tail.items():
        data, ext = transform_bytes(make_image(seed), "jpeg_q75")
        found = tenants.tube.wait_upload(tenants.tube.submit_upload(data, f"tc{seed}.{ext}"))
        assert [m["work_id"] for m in found["matches"]][:1] == [work_id]
