"""Follows the compacted ``works.registry`` topic into the :class:`WorkCatalog`.

Not a consumer group: every replica reads every partition from the beginning, so each holds the
whole index. Readiness waits until the follower has reached the end offsets seen at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import ConsumerRecord, TopicPartition

from contentmatch_match.catalog import WorkCatalog
from contentmatch_shared import metrics
from contentmatch_shared.events import InvalidEvent, WorkFingerprinted, decode_event
from contentmatch_shared.fingerprints import indexable_problem
from contentmatch_shared.kafka.connection import new_consumer
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import WORKS_REGISTRY

log = logging.getLogger(__name__)

# The follower's name in the consumer metrics (it has no consumer group).
METRICS_CONSUMER = "match-registry"


class RegistryFollower:
    def __init__(self, settings: Settings, catalog: WorkCatalog) -> None:
        self._settings = settings
        self._catalog = catalog
        self._topic = settings.topic(WORKS_REGISTRY.name)
        self._consumer = new_consumer(
            settings,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        self._partitions: list[TopicPartition] = []
        self._applied: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        self.caught_up = False
        self.skipped = 0

    async def start(self) -> None:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self._topic)
        while not partitions:
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(self._topic)
        self._partitions = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        self._applied = {tp: 0 for tp in self._partitions}
        self._initial_target = await self._consumer.end_offsets(self._partitions)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def run(self) -> None:
        try:
            await self._mark_if_caught_up()
            while True:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=2000)
                records = [r for recs in batches.values() for r in recs]
                if records:
                    await asyncio.to_thread(self._apply_all, records)
                for tp in self._partitions:
                    self._applied[tp] = await self._consumer.position(tp)
                    self._report_lag(tp)
                async with self._progress:
                    self._progress.notify_all()
                await self._mark_if_caught_up()
        finally:
            await self._consumer.stop()

    def _report_lag(self, tp: TopicPartition) -> None:
        high = self._consumer.highwater(tp)
        if high is not None:
            metrics.CONSUMER_LAG.labels(
                METRICS_CONSUMER, WORKS_REGISTRY.name, str(tp.partition)
            ).set(max(high - self._applied[tp], 0))

    def _apply_all(self, records: list[ConsumerRecord]) -> None:
        labels = (METRICS_CONSUMER, WORKS_REGISTRY.name)
        metrics.CONSUMER_RECORDS_CONSUMED.labels(*labels).inc(len(records))
        for record in records:
            work_id = record.key.decode(errors="replace") if record.key else None
            if record.value is None:
                if work_id:
                    self._catalog.apply(work_id, None)
                metrics.CONSUMER_RECORDS_PROCESSED.labels(*labels).inc()
                continue
            try:
                event = decode_event(record.value).payload
                if not isinstance(event, WorkFingerprinted):
                    raise InvalidEvent(f"unexpected {type(event).__name__} in the registry")
                if problem := indexable_problem(event.fingerprint):
                    raise InvalidEvent(f"work {event.work_id}: {problem}")
                self._catalog.apply(event.work_id, event)
            except Exception as exc:
                # Every replica reads the same record on every start: skipping (and counting) it
                # beats a crash loop. The work's latest state is unusable, so it leaves the index
                # (the same outcome before and after compaction drops its older records).
                self._skip(record, work_id, exc)
                continue
            metrics.CONSUMER_RECORDS_PROCESSED.labels(*labels).inc()
        metrics.CONSUMER_LAST_PROCESSED.labels(*labels).set(time.time())

    def _skip(self, record: ConsumerRecord, work_id: str | None, exc: Exception) -> None:
        self.skipped += 1
        metrics.CONSUMER_RECORDS_FAILED.labels(
            METRICS_CONSUMER, WORKS_REGISTRY.name, "poison"
        ).inc()
        log.error(
            "skipping registry record %s@%d (key %s): %s",
            record.partition,
            record.offset,
            work_id,
            exc if isinstance(exc, InvalidEvent) else repr(exc),
        )
        if work_id:
            with contextlib.suppress(Exception):
                self._catalog.apply(work_id, None)

    async def _mark_if_caught_up(self) -> None:
        if self.caught_up:
            return
        if all(self._applied.get(tp, 0) >= off for tp, off in self._initial_target.items()):
            self.caught_up = True
            metrics.REGISTRY_CAUGHT_UP.set(1)
            log.info("registry caught up: %d works", len(self._catalog))

    async def wait_until_current(self, timeout_s: float) -> bool:
        """Wait until everything in the registry *now* is applied (read-your-writes for uploads)."""
        target = await self._consumer.end_offsets(self._partitions)

        def done() -> bool:
            return all(self._applied.get(tp, 0) >= off for tp, off in target.items())

        try:
            async with self._progress:
                await asyncio.wait_for(self._progress.wait_for(done), timeout=timeout_s)
            return True
        except TimeoutError:
            return False
