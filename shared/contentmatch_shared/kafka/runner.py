"""The consumer runner: at-least-once processing of one consumer group.

Contract, in the order a record meets it:
1. decode: the value must be a valid :class:`Envelope`; otherwise it is poison.
2. handle: the handler performs its side effect idempotently (keys derived from ids), then returns.
   Failures are classified in :mod:`.failures`: poison (``InvalidEvent``, validation errors,
   ``PoisonRecord``) is dead-lettered at once; transient failures (a dependency down or slow) are
   retried with capped, jittered exponential backoff for as long as the dependency is away; an
   unknown error is retried ``consumer_max_retries`` times, then dead-lettered if the service's
   dependencies are healthy (and retried on, as transient, while they are not).
3. dead-letter: poison goes to ``<topic>.dlq`` with headers naming origin, error and service.
   Too many consecutive dead letters stop this consumer (a bad deploy must not drain a topic):
   it commits, leaves its group, sets ``cm_consumer_stopped`` and stays stopped; the process and
   its HTTP API stay up (``/healthz`` 200, ``/readyz`` names the stopped consumer).
4. commit: ``offset + 1`` of records that are done, about once a second, on rebalance and on stop.

Each fetched partition batch runs in a task of its own while that partition is paused, so the poll
loop keeps polling (group membership, rebalances, commits) however long a retry waits. Records of
one partition run in order, which keeps per-key order (topics are keyed by the id the events are
about). A revoked partition's task stops between attempts (its new owner redoes the record).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from contentmatch_shared import metrics
from contentmatch_shared.events import Envelope, InvalidEvent, decode_event
from contentmatch_shared.kafka.connection import new_consumer
from contentmatch_shared.kafka.failures import Failure, classify
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import TopicSpec, by_name

log = logging.getLogger(__name__)

Handler = Callable[[Envelope[Any], ConsumerRecord], Awaitable[None]]
# Why the service's dependencies are unhealthy right now, or None when they are fine.
DependencyCheck = Callable[[], Awaitable[str | None]]

# How long a revoked partition's handler may finish its attempt before it is cancelled.
_REVOKE_GRACE_S = 10.0
# How long shutdown waits for in-flight handlers (the service's own stop timeout is 30 s).
_DRAIN_GRACE_S = 25.0


class DeadLetterLimitExceeded(RuntimeError):
    """Why a consumer stopped: too many consecutive records went to the dead-letter topic."""


class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, runner: ConsumerRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._runner.release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._runner.assigned(assigned)


async def _no_dependency_problem() -> str | None:
    return None


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Capped exponential backoff with jitter: replicas retrying together spread out."""
    ceiling = min(cap_s, base_s * 2 ** max(attempt - 1, 0))
    return random.uniform(ceiling / 2, ceiling)


class ConsumerRunner:
    """Runs ``handler`` over every record of ``topics`` for consumer group ``group``."""

    def __init__(
        self,
        settings: Settings,
        *,
        service: str,
        group: str,
        topics: list[TopicSpec],
        handler: Handler,
        producer: EventProducer,
        dependency_problem: DependencyCheck = _no_dependency_problem,
    ) -> None:
        self._settings = settings
        self._service = service
        self.group = group
        self._topics = topics
        self._handler = handler
        self._producer = producer
        self._dependency_problem = dependency_problem
        self._consumer = new_consumer(
            settings,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
            session_timeout_ms=30_000,
            heartbeat_interval_ms=3_000,
            max_poll_interval_ms=600_000,
        )
        self._pending: dict[TopicPartition, int] = {}
        self._inflight: dict[TopicPartition, asyncio.Task[None]] = {}
        self._released: set[TopicPartition] = set()
        self._last_commit = time.monotonic()
        self._stopping = asyncio.Event()
        self._consecutive_dead_letters = 0
        self._lag_reported: set[TopicPartition] = set()
        self.running = False
        self.failed: BaseException | None = None
        self._crashed: Exception | None = None
        # Set when the dead-letter limit stopped this consumer; the process stays up.
        self.stopped: DeadLetterLimitExceeded | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe(
            [self._settings.topic(t.name) for t in self._topics], listener=_CommitOnRevoke(self)
        )
        metrics.CONSUMER_STOPPED.labels(self.group).set(0)
        self.running = True

    def assignment(self) -> set[TopicPartition]:
        """The partitions this replica owns in its group right now."""
        return set(self._consumer.assignment())

    def stop(self) -> None:
        """Ask the loop to finish its in-flight records, commit and leave the group."""
        self._stopping.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(
                    timeout_ms=500, max_records=self._settings.consumer_max_batch
                )
                for tp, records in batches.items():
                    self._consumer.pause(tp)
                    self._inflight[tp] = asyncio.create_task(
                        self._process_partition(tp, records), name=f"{self.group}:{tp.partition}"
                    )
                if self._crashed is not None:
                    raise self._crashed
                await self._report_lag()
                if (
                    time.monotonic() - self._last_commit
                    >= self._settings.consumer_commit_interval_s
                ):
                    await self.commit()
        except BaseException as exc:
            self.failed = exc
            raise
        finally:
            self.running = False
            try:
                await self._drain()
                await self.commit()
            finally:
                await self._consumer.stop()

    async def _drain(self) -> None:
        self._stopping.set()
        tasks = list(self._inflight.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=_DRAIN_GRACE_S)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def release(self, revoked: list[TopicPartition]) -> None:
        """On revoke: stop those partitions' tasks between attempts, then commit what is done."""
        self._released.update(revoked)
        tasks = [t for tp in revoked if (t := self._inflight.get(tp)) is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=_REVOKE_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.commit()

    def assigned(self, assigned: list[TopicPartition]) -> None:
        self._released.difference_update(assigned)

    def _abandoned(self, tp: TopicPartition) -> bool:
        return self._stopping.is_set() or tp in self._released

    async def commit(self) -> None:
        if not self._pending:
            self._last_commit = time.monotonic()
            return
        offsets = {tp: OffsetAndMetadata(off + 1, "") for tp, off in self._pending.items()}
        self._pending = {}
        try:
            await self._consumer.commit(offsets)
        except Exception as exc:
            # Records will be redelivered and handled again (idempotently): at-least-once.
            log.warning("offset commit failed for %s: %r", self.group, exc)
        self._last_commit = time.monotonic()

    async def _process_partition(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        try:
            for record in records:
                if self._abandoned(tp):
                    return  # uncommitted: redelivered to whoever owns the partition next
                if not await self._process(tp, record):
                    return
                self._pending[tp] = record.offset
                if self.stopped is not None:
                    self._stopping.set()
                    return
        except Exception as exc:
            # A bug in the runner itself (handler errors are caught in _process): end the loop.
            self._crashed = exc
        finally:
            self._inflight.pop(tp, None)
            if not self._abandoned(tp) and tp in self._consumer.assignment():
                self._consumer.resume(tp)

    def _topic_label(self, topic: str) -> str:
        prefix = self._settings.topic_prefix
        return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic

    async def _process(self, tp: TopicPartition, record: ConsumerRecord) -> bool:
        """Handle, retry or dead-letter one record; False when it was abandoned unfinished."""
        topic = self._topic_label(record.topic)
        labels = (self.group, topic)
        metrics.CONSUMER_RECORDS_CONSUMED.labels(*labels).inc()
        started = time.perf_counter()
        attempt = unknown_failures = 0
        while True:
            attempt += 1
            try:
                if record.value is None and by_name(topic).cleanup_policy == "compact":
                    break  # a tombstone: the handler's business only where it subscribes to it
                envelope = decode_event(record.value)
                await self._handler(envelope, record)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = classify(exc)
                metrics.CONSUMER_RECORDS_FAILED.labels(*labels, failure.value).inc()
                if failure is Failure.POISON:
                    kind = "invalid" if isinstance(exc, InvalidEvent) else "poison"
                    return await self._dead_letter(tp, record, f"{kind}: {exc}", attempt, failure)
                if self._abandoned(tp):
                    return False
                if failure is Failure.UNKNOWN:
                    unknown_failures += 1
                    if unknown_failures > self._settings.consumer_max_retries:
                        problem = await self._dependency_problem()
                        if problem is None:
                            log.error(
                                "giving up on %s@%s after %d attempts",
                                topic,
                                record.offset,
                                attempt,
                                exc_info=exc,
                            )
                            return await self._dead_letter(
                                tp,
                                record,
                                f"error after {attempt} attempts: {exc!r}",
                                attempt,
                                failure,
                            )
                        log.warning("%s@%s keeps failing while %s", topic, record.offset, problem)
                delay = backoff_delay(
                    attempt,
                    self._settings.consumer_retry_backoff_s,
                    self._settings.consumer_retry_backoff_max_s,
                )
                log.warning(
                    "retrying %s@%s in %.1fs (%s): %r",
                    topic,
                    record.offset,
                    delay,
                    failure.value,
                    exc,
                )
                if not await self._wait(delay, tp):
                    return False
        self._consecutive_dead_letters = 0
        metrics.CONSUMER_RECORDS_PROCESSED.labels(*labels).inc()
        metrics.CONSUMER_PROCESSING_SECONDS.labels(*labels).observe(time.perf_counter() - started)
        metrics.CONSUMER_LAST_PROCESSED.labels(*labels).set(time.time())
        return True

    async def _wait(self, delay: float, tp: TopicPartition) -> bool:
        """Sleep ``delay`` unless shutdown or a revoke comes first; False if one did."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        return not self._abandoned(tp)

    async def _dead_letter(
        self,
        tp: TopicPartition,
        record: ConsumerRecord,
        reason: str,
        attempts: int,
        failure: Failure,
    ) -> bool:
        """Park ``record`` in its DLQ; True once it is there (False if abandoned first)."""
        topic = self._topic_label(record.topic)
        dlq = by_name(topic).dlq
        headers = [
            ("origin_topic", record.topic.encode()),
            ("origin_partition", str(record.partition).encode()),
            ("origin_offset", str(record.offset).encode()),
            ("error", reason[:2000].encode()),
            ("failure", failure.value.encode()),
            ("service", self._service.encode()),
            ("consumer_group", self.group.encode()),
            ("attempts", str(attempts).encode()),
        ]
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._producer.raw.send_and_wait(
                    self._settings.topic(dlq.name),
                    value=record.value,
                    key=record.key,
                    headers=headers,
                )
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The record is poison, Kafka is not: keep it until the DLQ takes it.
                delay = backoff_delay(
                    attempt,
                    self._settings.consumer_retry_backoff_s,
                    self._settings.consumer_retry_backoff_max_s,
                )
                log.warning("dead-lettering %s@%s failed: %r", topic, record.offset, exc)
                if not await self._wait(delay, tp):
                    return False
        metrics.CONSUMER_RECORDS_DEAD_LETTERED.labels(self.group, topic).inc()
        log.error("dead-lettered %s@%d/%d: %s", topic, record.partition, record.offset, reason)
        self._consecutive_dead_letters += 1
        if self._consecutive_dead_letters > self._settings.consumer_dlq_limit and not self.stopped:
            self.stopped = DeadLetterLimitExceeded(
                f"{self._consecutive_dead_letters} consecutive dead letters in {self.group}"
            )
            metrics.CONSUMER_STOPPED.labels(self.group).set(1)
            log.critical("consumer %s stopped: %s", self.group, self.stopped)
        return True

    async def _report_lag(self) -> None:
        assigned = self._consumer.assignment()
        # A partition moved to another replica is reported there: drop its stale series here.
        for tp in self._lag_reported - assigned:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(
                    self.group, self._topic_label(tp.topic), str(tp.partition)
                )
        self._lag_reported &= assigned
        for tp in assigned:
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await self._consumer.position(tp)
            except Exception:
                continue
            metrics.CONSUMER_LAG.labels(
                self.group, self._topic_label(tp.topic), str(tp.partition)
            ).set(max(high - position, 0))
            self._lag_reported.add(tp)
