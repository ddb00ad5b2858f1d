"""The consumer runner against the real broker: retries, dead letters, commits, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY
from urllib3.exceptions import MaxRetryError

from contentmatch_shared.events import (
    Envelope,
    ObjectRef,
    UploadSubmitted,
    encode_event,
    make_envelope,
)
from contentmatch_shared.kafka.connection import new_consumer
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

    def __init__(
        self,
        settings: Settings,
        producer: EventProducer,
        handler: Any,
        dependency_problem: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        extra = {"dependency_problem": dependency_problem} if dependency_problem else {}
        self.runner = ConsumerRunner(
            settings,
            service="test",
            group="test-group",
            topics=[UPLOADS_SUBMITTED],
            handler=handler,
            producer=producer,
            **extra,
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


async def _dead_letters(
    settings: Settings, expected: int, timeout_s: float = 20
) -> list[ConsumerRecord]:
    consumer = new_consumer(
        settings,
        settings.topic(UPLOADS_SUBMITTED.dlq.name),
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        records: list[ConsumerRecord] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        # Expecting none still reads for a while: an empty DLQ must be seen empty, not assumed.
        while len(records) < max(expected, 1) and asyncio.get_running_loop().time() < deadline:
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
    assert await _dead_letters(isolated, 0, timeout_s=2) == []


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
        # It stops by itself (no exception: the service around it keeps serving).
        await asyncio.wait_for(asyncio.shield(run.task), timeout=30)
    assert isinstance(run.runner.stopped, DeadLetterLimitExceeded)
    assert run.runner.failed is None
    assert REGISTRY.get_sample_value("cm_consumer_stopped", {"consumer": "test-group"}) == 1
    # The limit stops it before it drains the topic: 3 dead letters (limit 2 + the one over it).
    assert len(await _dead_letters(settings, 5, timeout_s=3)) == 3


async def test_an_outage_longer_than_the_retries_is_waited_out_not_dead_lettered(
    isolated: Settings, producer: EventProducer
) -> None:
    settings = isolated.model_copy(update={"consumer_max_retries": 1})
    attempts: list[str] = []

    async def s3_down_for_a_while(envelope: Envelope[Any], record: ConsumerRecord) -> None:
        attempts.append(envelope.payload.upload_id)
        if len(attempts) < 6:
            raise MaxRetryError(None, "/cm-state/x", reason=ConnectionRefusedError(111, "no"))

    await _publish(producer, range(1))
    async with Run(settings, producer, s3_down_for_a_while):
        await _until(lambda: len(attempts) == 6)
    assert await _dead_letters(settings, 0, timeout_s=2) == []


async def test_an_unknown_error_is_dead_lettered_only_once_dependencies_are_healthy(
    isolated: Settings, producer: EventProducer
) -> None:
    settings = isolated.model_copy(update={"consumer_max_retries": 1})
    outage = {"on": True}
    attempts: list[int] = []

    async def dependencies() -> str | None:
        return "S3 unreachable" if outage["on"] else None

    async def confused_by_the_outage(envelope: Envelope[Any], record: ConsumerRecord) -> None:
        attempts.append(record.offset)
        raise RuntimeError("an error nobody classified")

    await _publish(producer, range(1))
    async with Run(settings, producer, confused_by_the_outage, dependencies):
        await _until(lambda: len(attempts) >= 5)
        assert await _dead_letters(settings, 0, timeout_s=2) == []
        outage["on"] = False
        dead = await _dead_letters(settings, 1)
    assert [r.key for r in dead] == [b"upl_0"]
    headers = dict(dead[0].headers)
    assert headers["failure"] == b"unknown"
    assert b"an error nobody classified" in headers["error"]


async def test_a_partition_waiting_out_an_outage_does_not_hold_up_the_others(
    isolated: Settings, producer: EventProducer
) -> None:
    topic = isolated.topic(UPLOADS_SUBMITTED.name)
    outage = {"on": True}
    done: list[int] = []

    async def stuck_on_partition_0(envelope: Envelope[Any], record: ConsumerRecord) -> None:
        if record.partition == 0 and outage["on"]:
            raise KafkaConnectionError("broker gone")
        done.append(record.partition)

    for partition in (0, 1, 2, 1, 2):
        await producer.raw.send_and_wait(
            topic,
            encode_event(make_envelope(_upload(partition), producer="t", correlation_id="t")),
            key=b"k",
            partition=partition,
        )
    async with Run(isolated, producer, stuck_on_partition_0) as run:
        await _until(lambda: sorted(done) == [1, 1, 2, 2])
        # The poll loop stays in charge: the stuck partition is paused, not blocking.
        assert TopicPartition(topic, 0) in run.runner._consumer.paused()
        outage["on"] = False
        await _until(lambda: sorted(done) == [0, 1, 1, 2, 2])


async def test_a_rebalance_completes_while_a_record_waits_out_an_outage(
    isolated: Settings, producer: EventProducer
) -> None:
    outage = {"on": True}
    handled: list[tuple[str, int]] = []

    def handler(name: str) -> Any:
        async def handle(envelope: Envelope[Any], record: ConsumerRecord) -> None:
            if outage["on"]:
                raise ConnectionRefusedError(111, "S3 is down")
            handled.append((name, envelope.payload.upload_id))

        return handle

    await _publish(producer, range(6))
    async with Run(isolated, producer, handler("first")) as first:
        await _until(lambda: len(first.runner._consumer.paused()) == 3)
        # A second replica joins: the first must give partitions up although every one of its
        # records is mid-retry, and both keep their membership.
        async with Run(isolated, producer, handler("second")) as second:
            await _until(
                lambda: (
                    len(first.runner._consumer.assignment()) > 0
                    and len(second.runner._consumer.assignment()) > 0
                    and len(first.runner._consumer.assignment())
                    + len(second.runner._consumer.assignment())
                    == 3
                ),
                timeout_s=40,
            )
            outage["on"] = False
            await _until(lambda: {u for _, u in handled} == {f"upl_{i}" for i in range(6)})
    assert {name for name, _ in handled} == {"first", "second"}
    assert await _dead_letters(isolated, 0, timeout_s=2) == []
