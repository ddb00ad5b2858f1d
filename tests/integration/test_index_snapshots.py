"""Snapshots against the real Kafka and S3: a follower started from its shards' snapshots
replays only the registry records after them and ends with the catalogs a full replay gives;
a damaged snapshot is refused with its reason and the whole registry replayed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from contentmatch_match.catalog import WorkCatalog
from contentmatch_match.registry import RegistryFollower
from contentmatch_match.sharding import ShardIndex, shard_of
from contentmatch_match.snapshots import SnapshotStore
from contentmatch_shared.kafka.connection import new_producer
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore
from contentmatch_shared.topics import WORKS_REGISTRY
from tests.integration.test_registry_follower import _entry

SHARDS = 2


@pytest.fixture
async def store(isolated: Settings) -> ObjectStore:
    objects = ObjectStore(isolated)
    await objects.ensure_buckets()
    return objects


class _Running:
    def __init__(self, follower: RegistryFollower, task: asyncio.Task[None]) -> None:
        self.follower, self.task = follower, task

    @property
    def works(self) -> dict[int, set[str]]:
        return {k: set(s.catalog.work_ids()) for k, s in self.follower.shards.items()}


async def _follow(settings: Settings, store: ObjectStore, served=(0, 1)) -> _Running:
    shards = {k: ShardIndex(k, SHARDS, WorkCatalog()) for k in served}
    follower = RegistryFollower(settings, shards, SnapshotStore(settings, store))
    await follower.start()
    task = asyncio.create_task(follower.run())
    deadline = asyncio.get_running_loop().time() + 60
    while not follower.caught_up:
        assert asyncio.get_running_loop().time() < deadline, "follower never caught up"
        await asyncio.sleep(0.05)
    return _Running(follower, task)


async def _stop(running: _Running) -> None:
    running.task.cancel()
    await asyncio.gather(running.task, return_exceptions=True)


@pytest.fixture
async def registry(isolated: Settings) -> AsyncIterator:
    producer = new_producer(isolated, enable_idempotence=False)
    await producer.start()
    topic = isolated.topic(WORKS_REGISTRY.name)

    async def send(work_id: str, seed: int | None) -> None:
        value = None if seed is None else _entry(work_id, seed, work_id)
        await producer.send_and_wait(topic, value, key=work_id.encode())

    yield send
    await producer.stop()


async def test_a_restart_loads_the_snapshots_and_replays_only_what_follows(
    isolated: Settings, store: ObjectStore, registry
) -> None:
    head = [f"wrk_head{i}" for i in range(6)]
    for i, work_id in enumerate(head):
        await registry(work_id, 8410 + i)
    first = await _follow(isolated, store)
    assert first.follower.shards[0].origin is None  # nothing to load yet
    written = await first.follower.snapshot_now()
    assert sorted(w["shard"] for w in written) == [0, 1]
    assert sum(int(w["works"]) for w in written) == 6

    # The tail: two new works, one replaced, one withdrawn.
    tail = [("wrk_tail0", 8420), ("wrk_tail1", 8421), (head[0], 8422), (head[1], None)]
    for work_id, seed in tail:
        await registry(work_id, seed)
    assert await first.follower.wait_until_current(10)
    expected = first.works
    await _stop(first)
    assert expected[0] | expected[1] == {*head[2:], head[0], "wrk_tail0", "wrk_tail1"}
    assert all(shard_of(w, SHARDS) == k for k, ws in expected.items() for w in ws)

    restarted = await _follow(isolated, store)
    try:
        assert restarted.works == expected
        assert restarted.follower.records_read == len(tail)  # only the tail was read
        for k, shard in restarted.follower.shards.items():
            assert shard.origin is not None, shard.origin_problem
            assert shard.replayed == sum(shard_of(w, SHARDS) == k for w, _ in tail)
        assert restarted.follower.shards[shard_of(head[0], SHARDS)].catalog.get(head[0])
    finally:
        await _stop(restarted)

    # A replica serving one shard holds that shard's works only.
    one = await _follow(isolated, store, served=(1,))
    try:
        assert one.works == {1: expected[1]}
    finally:
        await _stop(one)


async def test_a_damaged_snapshot_is_refused_and_the_registry_replayed(
    isolated: Settings, store: ObjectStore, registry
) -> None:
    for i in range(4):
        await registry(f"wrk_dmg{i}", 8430 + i)
    first = await _follow(isolated, store)
    written = await first.follower.snapshot_now()
    expected = first.works
    await _stop(first)
    victim = next(w for w in written if w["works"])
    data = await store.get_bytes(isolated.bucket_state, str(victim["key"]))
    assert data is not None
    await store.put_bytes(isolated.bucket_state, str(victim["key"]), data[:-100] + b"\0" * 100)

    again = await _follow(isolated, store)
    try:
        assert again.works == expected
        damaged = again.follower.shards[int(victim["shard"])]
        assert damaged.origin is None and "sha256" in (damaged.origin_problem or "")
        assert damaged.replayed == len(expected[damaged.shard])
        intact = again.follower.shards[1 - damaged.shard]
        assert intact.origin is not None and intact.replayed == 0
        assert again.follower.records_read == 4  # the whole registry, for the damaged shard
    finally:
        await _stop(again)
