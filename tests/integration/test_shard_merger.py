"""The merger against the real Kafka and S3: the answers of every shard become one verdict on
``uploads.matched``; an upload a shard never answers fails at the deadline, naming the shard;
answers after the decision, and redelivered ones, publish nothing more."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiokafka import TopicPartition

from contentmatch_match.merger import PartialMerger
from contentmatch_match.sharding import MERGER_GROUP
from contentmatch_shared.events import (
    Match,
    MediaFailed,
    ObjectRef,
    UploadMatched,
    UploadMetadata,
    UploadPartialMatched,
    decode_event,
    utcnow,
)
from contentmatch_shared.kafka.connection import new_consumer
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import MATCH_PARTIALS, MEDIA_FAILED, UPLOADS_MATCHED


def _partial(upload_id: str, shard: int, matches: list[Match]) -> UploadPartialMatched:
    now = utcnow()
    return UploadPartialMatched(
        upload_id=upload_id,
        tenant="tube",
        media_type="image",
        object=ObjectRef(bucket="b", key=f"uploads/tube/{upload_id}"),
        metadata=UploadMetadata(),
        matches=matches,
        submitted_at=now - timedelta(seconds=1),
        matched_at=now,
        registry_size=3 + shard,
        shard=shard,
        shards=2,
    )


def _match(work_id: str, score: float) -> Match:
    return Match(work_id=work_id, kind="work", title=work_id, tenant="label", score=score,
                 policy="block", media_type="image", signal="pdq")  # fmt: skip


async def _read_all(settings: Settings, topic: str, wait_s: float) -> list:
    consumer = new_consumer(settings, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        name = settings.topic(topic)
        while not consumer.partitions_for_topic(name):
            await consumer._client.force_metadata_update()
        parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or []]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out = []
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            out += [decode_event(r.value).payload for rs in batch.values() for r in rs]
        return out
    finally:
        await consumer.stop()


async def test_answers_merge_into_one_verdict_and_a_silent_shard_fails_the_upload(
    isolated: Settings,
) -> None:
    settings = isolated.model_copy(update={"match_shards": 2, "match_merge_deadline_s": 2.0})
    runtime = ServiceRuntime(settings, "match")
    await runtime.start()
    merger = PartialMerger(runtime)
    # A group of this test's own: the e2e stack's merger (same broker) is in MERGER_GROUP, and
    # sharing it would make this test wait on that member's rebalances.
    group = f"{settings.topic_prefix}{MERGER_GROUP}"
    merger.runner = await runtime.add_consumer(group, [MATCH_PARTIALS], merger)
    runtime.spawn(merger.sweep(), "merge-sweeper")
    publish = runtime.producer.publish
    try:
        await publish(MATCH_PARTIALS, "upl_whole", _partial("upl_whole", 1, [_match("wrk_b", 0.7)]),
                      correlation_id="c1")  # fmt: skip
        await publish(MATCH_PARTIALS, "upl_half", _partial("upl_half", 0, []), correlation_id="c2")
        await publish(MATCH_PARTIALS, "upl_whole", _partial("upl_whole", 0, [_match("wrk_a", 0.9)]),
                      correlation_id="c1")  # fmt: skip
        matched = [m for m in await _read_all(settings, UPLOADS_MATCHED.name, 8)]
        assert [type(m) for m in matched] == [UploadMatched]
        verdict = matched[0]
        assert verdict.upload_id == "upl_whole"
        assert [m.work_id for m in verdict.matches] == ["wrk_a", "wrk_b"]
        assert verdict.registry_size == 7

        failed = [f for f in await _read_all(settings, MEDIA_FAILED.name, 1) if f]
        assert [(f.subject_id, f.code) for f in failed] == [("upl_half", "shard_missing")]
        assert isinstance(failed[0], MediaFailed) and "[1] of 2" in failed[0].message

        # Late and redelivered answers: nothing more is published; nothing is left behind.
        await publish(MATCH_PARTIALS, "upl_half", _partial("upl_half", 1, []), correlation_id="c2")
        await publish(
            MATCH_PARTIALS, "upl_whole", _partial("upl_whole", 1, []), correlation_id="c1"
        )
        await asyncio.sleep(3)
        assert len(await _read_all(settings, UPLOADS_MATCHED.name, 1)) == 1
        assert len(await _read_all(settings, MEDIA_FAILED.name, 1)) == 1
        assert await runtime.store.list_keys(settings.bucket_state, "match/merge/p") == []
        decided = await runtime.store.list_keys(settings.bucket_state, "match/merge/decided/")
        assert len(decided) == 2
    finally:
        await runtime.stop()
