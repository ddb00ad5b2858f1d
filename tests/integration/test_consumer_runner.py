"""The consumer runner against the real broker: retries, dead letters, commits, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from contentmatch_shared.events import Envelope, ObjectRef, UploadSubmitted
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.kafka.runner import ConsumerRunner, DeadLetterLimitExceeded
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import UPLOADS_SUBMITTED


def _upload(i: int) -> UploadSubmitted:
    return UploadSubmitted(
        upload_id=f"upl_{i}", tenant="tube", object=ObjectRef(bucket="b", key=f"k{i}")
    )


async def _publish(producer: EventProducer, ids: range) -> None:
    for i in ids:
        await producer.publish(UPLOADS_SUBMITTED, f"upl_{i}", _upload(i), correlation_id="t")


async def _until(predicate: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


class Run:
    """A runner in a background task, stopped the way SIGTERM stops a service."""

    def __init__(self, settings: Settings, producer: EventProducer, handler: Any) -> None:
        self.runner = ConsumerRunner(
            settings,
            service="test",
            group="test-group",
            topics=[UPLOADS_SUBMITTED],
            handler=handler,
            producer=producer,
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Run:
        await self.runner.start()
        self.task = asyncio.create_task(self.runner.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.runner.stop()
        assert self.task is not None
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def producer(isolated: Settings):
    p = EventProducer(isolated, "test")
    await p.start()
    yield p
    await p.stop()


async def _dead_letters(settings: Settings, expected: int) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(
        settings.topic(UPLOADS_SUBMITTED.dlq.name),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        records: list[ConsumerRecord] = []
        deadline = asyncio.get_running_loop().time() + 20
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            records += [r for rs in batch.values() for r in rs]
        return records
    finally:
        await consumer.stop()


def recorder() -> tuple[list[str], Callable[[Envelope[Any], ConsumerRecord], Awaitable[None]]]:
    seen: list[str] = []

    async def handle(envelope: Envelope[Any], record: ConsumerRecord) -> None:
        seen.append(envelope.payload.upload_id)

    return seen, handle


async def test_poison_goes_to_the_dlq_with_its_reason(
    isolated: Settings, producer: EventProducer
) -> None:
    seen, handle = recorder()
    topic = isolated.topic(UPLOADS_SUBMITTED.name)
    await producer.raw.send_and_wait(topic, b"this is not json", key=b"bad")
    await _publish(producer, range(1))
    async with Run(isolated, producer, handle):
        await _until(lambda: seen == ["upl_0"])
    dead = await _dead_letters(isolated, 1)
    assert len(dead) == 1
    assert dead[0].value == b"this is not json"
    assert dead[0].key == b"bad"
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["origin_topic"] == topic
    assert headers["origin_offset"] == "0"
    assert headers["error"].startswith("invalid: not a valid envelope")
    assert headers["service"] == "test"


async def test_transient_errors_are_retried_until_they_pass(
    isolated: Settings, producer: EventProducer
) -> None:
    attempts: list[str] = []

    async def flaky(envelope: Envelope[Any], record: ConsumerRecord) -> None:
        attempts.append(envelope.payload.upload_id)
        if len(attempts) < 3:
            raise ConnectionError("S3 blinked")

    await _publish(producer, range(1))
    async with Run(isolated, producer, flaky):
        await _until(lambda: len(attempts) == 3)
        await asyncio.sleep(0.3)
    assert attempts == ["upl_0"] * 3
    assert await _dead_letters(isolated, 0) == []


async def test_an_error_that_persists_is_dead_lettered_after_the_retries(
    isolated: Settings, producer: EventProducer
) -> None:
    settings = isolated.model_copy(update={"consumer_max_retries": 2})
    seen: list[str] = []

    async def broken_for_one(envelope: Envelope[Any], record: ConsumerRecord) -> None:
        if envelope.payload.upload_id == "upl_0":
            raise ValueError("cannot handle this one")
        seen.append(envelope.payload.upload_id)

    await _publish(producer, range(3))
    async with Run(settings, producer, broken_for_one):
        dead = await _dead_letters(settings, 1)
        await _until(lambda: sorted(seen) == ["upl_1", "upl_2"])
    assert [r.key for r in dead] == [b"upl_0"]
    headers = dict(dead[0].headers)
    assert headers["attempts"] == b"3"
    assert b"cannot handle this one" in headers["error"]


async def test_committed_work_is_not_redone_after_a_restart(
    isolated: Settings, producer: EventProducer
) -> None:
    seen, handle = recorder()
    await _publish(producer, range(5))
    async with Run(isolated, producer, handle):
        await _until(lambda: len(seen) == 5)
    # A new process of the same group resumes after the committed offsets.
    await _publish(producer, range(5, 7))
    seen2, handle2 = recorder()
    async with Run(isolated, producer, handle2):
        await _until(lambda: len(seen2) == 2)
        await asyncio.sleep(0.5)
    assert sorted(seen) == [f"upl_{i}" for i in range(5)]
    assert sorted(seen2) == ["upl_5", "upl_6"]


async def test_too_many_dead_letters_in_a_row_stop_the_consumer(
    isolated: Settings, producer: EventProducer
) -> None:
    settings = isolated.model_copy(update={"consumer_dlq_limit": 2})
    topic = settings.topic(UPLOADS_SUBMITTED.name)
    for i in range(5):
        await producer.raw.send_and_wait(topic, b"garbage", key=f"k{i}".encode(), partition=0)
    _, handle = recorder()
    run = Run(settings, producer, handle)
    async with run:
        assert run.task is not None
        with pytest.raises(DeadLetterLimitExceeded):
            await asyncio.wait_for(asyncio.shield(run.task), timeout=30)
    assert run.runner.failed is not None
