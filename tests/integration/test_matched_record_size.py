"""A match result naming ten works with a megabyte of identifiers each, through the real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from contentmatch_match.result_bounds import bound_result
from contentmatch_shared.events import Match, ObjectRef, UploadMatched, UploadMetadata, decode_event
from contentmatch_shared.kafka.connection import new_consumer
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import UPLOADS_MATCHED


def _legacy_match(i: int) -> Match:
    """A work registered before ingest bounded metadata: ~1 MiB of identifiers."""
    identifiers = {"isrc": f"GBCMA26{i:05d}"} | {f"legacy_{n}": "x" * 1000 for n in range(1050)}
    return Match(
        work_id=f"wrk_{i}", kind="work", title=f"Work {i}", tenant="label", score=0.9,
        policy="block", media_type="image", signal="phash", identifiers=identifiers,
        work_object=ObjectRef(bucket="cm-media", key=f"works/label/wrk_{i}"),
    )  # fmt: skip


async def test_the_bounded_result_is_published_where_the_full_one_is_refused(
    isolated: Settings,
) -> None:
    now = datetime.now(UTC)
    full = UploadMatched(
        upload_id="upl_big", tenant="tube", media_type="image",
        object=ObjectRef(bucket="cm-media", key="uploads/tube/upl_big"), metadata=UploadMetadata(),
        matches=[_legacy_match(i) for i in range(10)], submitted_at=now, matched_at=now,
    )  # fmt: skip
    producer = EventProducer(isolated, "test")
    await producer.start()
    try:
        with pytest.raises(MessageSizeTooLargeError):
            await producer.publish(UPLOADS_MATCHED, "upl_big", full, correlation_id="t")
        bounded = await asyncio.to_thread(bound_result, full)
        await producer.publish(UPLOADS_MATCHED, "upl_big", bounded, correlation_id="t")
    finally:
        await producer.stop()

    consumer = new_consumer(
        isolated,
        isolated.topic(UPLOADS_MATCHED.name),
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    got = decode_event(record.value).payload
    assert isinstance(got, UploadMatched)
    assert [m.work_id for m in got.matches] == [f"wrk_{i}" for i in range(10)]
    for match in got.matches:
        assert match.identifiers["isrc"] == f"GBCMA26{int(match.work_id[4:]):05d}"
        assert match.omitted and "identifiers (record size)" in match.omitted[0]
        assert match.work_object is not None
