"""Restart to ready of the match index: full registry replay vs snapshot + tail, on the real
Kafka and S3 (started on test ports, fresh), one and two shards.

    make bench-snapshots [ARGS="--works 5000 --tail 200"]

Works are real image fingerprints of generated pictures (a pool, reused under distinct work ids:
the cost per work of decoding and indexing is the real one). Prints each phase's seconds and
the ratio of snapshot start to full replay in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from pathlib import Path

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.catalog import WorkCatalog
from contentmatch_match.registry import RegistryFollower
from contentmatch_match.sharding import ShardIndex
from contentmatch_match.snapshots import SnapshotStore
from contentmatch_shared.events import (
    ObjectRef,
    WorkFingerprinted,
    WorkMetadata,
    encode_event,
    make_envelope,
    utcnow,
)
from contentmatch_shared.kafka.admin import ensure_topics
from contentmatch_shared.kafka.connection import new_producer
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore
from contentmatch_shared.topics import WORKS_REGISTRY
from tests.fixtures.images import make_image, to_bytes
from tests.support.infra import REPO, TestInfra

POOL = 40


async def produce(settings: Settings, first: int, count: int, pool: list) -> None:
    producer = new_producer(settings, enable_idempotence=False, linger_ms=20)
    await producer.start()
    try:
        topic = settings.topic(WORKS_REGISTRY.name)
        sends = []
        for i in range(first, first + count):
            work_id = f"wrk_bench{i:08d}"
            event = WorkFingerprinted(
                work_id=work_id,
                tenant="label",
                media_type="image",
                object=ObjectRef(bucket="b", key=f"works/{work_id}"),
                metadata=WorkMetadata(title=f"Bench {i}", policy="block"),
                fingerprint=pool[i % len(pool)],
                fingerprinted_at=utcnow(),
            )
            value = encode_event(make_envelope(event, producer="bench", correlation_id=work_id))
            sends.append(await producer.send(topic, value, key=work_id.encode()))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def start(settings: Settings, store: ObjectStore, shards: int, snapshots: bool) -> dict:
    indexes = {k: ShardIndex(k, shards, WorkCatalog()) for k in range(shards)}
    follower = RegistryFollower(
        settings, indexes, SnapshotStore(settings, store) if snapshots else None
    )
    began = time.perf_counter()
    await follower.start()
    task = asyncio.create_task(follower.run())
    if not await follower.wait_until_current(3600):
        raise RuntimeError("the follower never caught up")
    ready_s = time.perf_counter() - began
    return {"follower": follower, "task": task, "ready_s": ready_s}


async def stop(run: dict) -> None:
    run["task"].cancel()
    await asyncio.gather(run["task"], return_exceptions=True)


async def bench(settings: Settings, works: int, tail: int) -> None:
    store = ObjectStore(settings)
    await store.ensure_buckets()
    await ensure_topics(settings)
    print(f"fingerprinting a pool of {POOL} generated images...", flush=True)
    pool = [fingerprint_image(to_bytes(make_image(8460 + i, (480, 360)))) for i in range(POOL)]
    began = time.perf_counter()
    await produce(settings, 0, works, pool)
    print(f"registry: {works} image works produced in {time.perf_counter() - began:.1f}s")
    rows = []
    for shards in (1, 2):
        full = await start(settings, store, shards, snapshots=False)
        await stop(full)
        warm = await start(settings, store, shards, snapshots=True)  # no snapshot yet: replays
        began = time.perf_counter()
        written = await warm["follower"].snapshot_now()
        write_s = time.perf_counter() - began
        await stop(warm)
        size = 0
        for w in written:
            data = await store.get_bytes(settings.bucket_state, str(w["key"]))
            size += len(data or b"")
        await produce(settings, works + (shards - 1) * tail, tail, pool)
        restored = await start(settings, store, shards, snapshots=True)
        follower = restored["follower"]
        loads = [s.origin.load_s for s in follower.shards.values() if s.origin]
        await stop(restored)
        rows.append(
            (shards, full["ready_s"], write_s, size, restored["ready_s"], max(loads, default=0),
             follower.records_read)
        )  # fmt: skip
    print()
    print("| shards | full replay s | snapshot write s | snapshot MB | snapshot + tail s | "
          "load s (slowest shard) | records read | ratio to full replay |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for shards, full_s, write_s, size, ready_s, load_s, read in rows:
        print(f"| {shards} | {full_s:.2f} | {write_s:.2f} | {size / 1e6:.1f} | {ready_s:.2f} | "
              f"{load_s:.2f} | {read} (tail {tail}) | {ready_s / full_s:.2f}x |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--works", type=int, default=3000)
    parser.add_argument("--tail", type=int, default=100)
    args = parser.parse_args()
    infra = TestInfra(
        state_dir=Path(os.environ.get("CM_BENCH_STATE_DIR", REPO / ".state" / "bench-snapshots")),
        kafka_port=int(os.environ.get("CM_TEST_KAFKA_PORT", "19092")),
        kafka_controller_port=int(os.environ.get("CM_TEST_KAFKA_CONTROLLER_PORT", "19093")),
        s3_port=int(os.environ.get("CM_TEST_S3_PORT", "19000")),
    )
    infra.start()
    try:
        tag = uuid.uuid4().hex[:6]
        settings = infra.settings().model_copy(
            update={"topic_prefix": f"bench{tag}.", "bucket_state": f"bench-{tag}-state"}
        )
        asyncio.run(bench(settings, args.works, args.tail))
    finally:
        infra.stop()


if __name__ == "__main__":
    main()
