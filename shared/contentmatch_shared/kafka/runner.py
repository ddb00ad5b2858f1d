"""The consumer runner: at-least-once processing of one consumer group.

Contract, in the order a record meets it:
1. decode: the value must be a valid :class:`Envelope`; otherwise it is poison.
2. handle: the handler performs its side effect idempotently (keys derived from ids), then returns.
   ``InvalidEvent`` means poison; any other exception is retried with exponential backoff, and
   dead-lettered once the retries are spent.
3. dead-letter: poison goes to ``<topic>.dlq`` with headers naming origin, error and service.
   Too many consecutive dead letters stop the consumer (a bad deploy must not drain a topic).
4. commit: ``offset + 1`` of records that are done, about once a second, on rebalance and on stop.

Partitions of one fetched batch run concurrently; records of one partition run in order, which
keeps per-key order (topics are keyed by the id the events are about).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from contentmatch_shared import metrics
from contentmatch_shared.events import Envelope, InvalidEvent, decode_event
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import TopicSpec, by_name

log = logging.getLogger(__name__)

Handler = Callable[[Envelope[Any], ConsumerRecord], Awaitable[None]]


class DeadLetterLimitExceeded(RuntimeError):
    """Raised when too many consecutive records went to the dead-letter topic."""


class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, runner: ConsumerRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._runner.commit()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


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
    ) -> None:
        self._settings = settings
        self._service = service
        self.group = group
        self._topics = topics
        self._handler = handler
        self._producer = producer
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
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
        self._last_commit = time.monotonic()
        self._stopping = asyncio.Event()
        self._consecutive_dead_letters = 0
        self._lag_reported: set[TopicPartition] = set()
        self.running = False
        self.failed: BaseException | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe(
            [self._settings.topic(t.name) for t in self._topics], listener=_CommitOnRevoke(self)
        )
        self.running = True

    def stop(self) -> None:
        """Ask the loop to finish its current batch, commit and leave the group."""
        self._stopping.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(
                    timeout_ms=500, max_records=self._settings.consumer_max_batch
                )
                if batches:
                    await asyncio.gather(
                        *(self._process_partition(tp, recs) for tp, recs in batches.items())
                    )
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
                await self.commit()
            finally:
                await self._consumer.stop()

    async def commit(self) -> None:
        if not self._pending:
            self._last_commit = time.monotonic()
            return
        offsets = {tp: OffsetAndMetadata(off + 1, "") for tp, off in self._pending.items()}
        self._pending = {}
        try:
            await self._consumer.commit(offsets)
        except Exception:
            # Records will be redelivered and handled again (idempotently): at-least-once.
            log.exception("offset commit failed for %s", self.group)
        self._last_commit = time.monotonic()

    async def _process_partition(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        for record in records:
            if self._stopping.is_set():
                return  # uncommitted: redelivered after restart
            if not await self._process(record):
                return  # interrupted by shutdown: uncommitted, so the next owner redoes it
            self._pending[tp] = record.offset

    def _topic_label(self, topic: str) -> str:
        prefix = self._settings.topic_prefix
        return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic

    async def _process(self, record: ConsumerRecord) -> bool:
        """Handle, retry or dead-letter one record; False only when shutdown interrupted it."""
        topic = self._topic_label(record.topic)
        labels = (self.group, topic)
        metrics.CONSUMER_RECORDS_CONSUMED.labels(*labels).inc()
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                if record.value is None and by_name(topic).cleanup_policy == "compact":
                    break  # a tombstone: the handler's business only where it subscribes to it
                envelope = decode_event(record.value)
                await self._handler(envelope, record)
                break
            except InvalidEvent as exc:
                metrics.CONSUMER_RECORDS_FAILED.labels(*labels, "invalid").inc()
                await self._dead_letter(record, f"invalid: {exc}", attempt)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.CONSUMER_RECORDS_FAILED.labels(*labels, "error").inc()
                if self._stopping.is_set():
                    return False
                if attempt > self._settings.consumer_max_retries:
                    log.exception(
                        "giving up on %s@%s after %d attempts", topic, record.offset, attempt
                    )
                    await self._dead_letter(
                        record, f"error after {attempt} attempts: {exc!r}", attempt
                    )
                    return True
                delay = min(
                    self._settings.consumer_retry_backoff_s * 2 ** (attempt - 1),
                    self._settings.consumer_retry_backoff_max_s,
                )
                log.warning("retrying %s@%s in %.1fs: %r", topic, record.offset, delay, exc)
                # Waits on the stop flag, so SIGTERM is not held up by a backoff.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        self._consecutive_dead_letters = 0
        metrics.CONSUMER_RECORDS_PROCESSED.labels(*labels).inc()
        metrics.CONSUMER_PROCESSING_SECONDS.labels(*labels).observe(time.perf_counter() - started)
        metrics.CONSUMER_LAST_PROCESSED.labels(*labels).set(time.time())
        return True

    async def _dead_letter(self, record: ConsumerRecord, reason: str, attempts: int) -> None:
        topic = self._topic_label(record.topic)
        dlq = by_name(topic).dlq
        headers = [
            ("origin_topic", record.topic.encode()),
            ("origin_partition", str(record.partition).encode()),
            ("origin_offset", str(record.offset).encode()),
            ("error", reason[:2000].encode()),
            ("service", self._service.encode()),
            ("consumer_group", self.group.encode()),
            ("attempts", str(attempts).encode()),
        ]
        await self._producer.raw.send_and_wait(
            self._settings.topic(dlq.name), value=record.value, key=record.key, headers=headers
        )
        metrics.CONSUMER_RECORDS_DEAD_LETTERED.labels(self.group, topic).inc()
        log.error("dead-lettered %s@%d/%d: %s", topic, record.partition, record.offset, reason)
        self._consecutive_dead_letters += 1
        if self._consecutive_dead_letters > self._settings.consumer_dlq_limit:
            raise DeadLetterLimitExceeded(
                f"{self._consecutive_dead_letters} consecutive dead letters in {self.group}"
            )

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
