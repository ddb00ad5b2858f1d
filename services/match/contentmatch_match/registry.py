"""Follows the compacted ``works.registry`` topic into the catalogs of the shards served here.

Not a consumer group: every replica reads every partition, so each holds the whole of its
shards. One reader feeds every served shard: a record goes to the shard of its work id
(``sharding.shard_of``), or nowhere when this process does not serve that shard. A shard that
started from a snapshot skips the records its snapshot covers; the reader starts each partition
at the lowest offset any served shard still needs. Readiness waits until the follower has
reached the end offsets seen at start. Snapshots are written from the follower's own loop
between batches, so that a snapshot's catalog is exactly the offsets it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Mapping

from aiokafka import ConsumerRecord, TopicPartition

from contentmatch_match import snapshots
from contentmatch_match.catalog import WorkCatalog
from contentmatch_match.sharding import ShardIndex, SnapshotOrigin, shard_of
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
    """``shards``: the served shards by number, or one catalog (a single unsharded index).
    ``snapshot_store``: where snapshots are loaded from at start and written to (None: never)."""

    def __init__(
        self,
        settings: Settings,
        shards: Mapping[int, ShardIndex] | WorkCatalog,
        snapshot_store: snapshots.SnapshotStore | None = None,
    ) -> None:
        self._settings = settings
        if isinstance(shards, WorkCatalog):
            shards = {0: ShardIndex(0, 1, shards)}
        self.shards: dict[int, ShardIndex] = dict(shards)
        self._shard_count = next(iter(self.shards.values())).shards if self.shards else 1
        self._snapshots = snapshot_store
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
        self._writing: asyncio.Task[None] | None = None
        self.caught_up = False
        self.skipped = 0
        self.records_read = 0  # every registry record fetched since start, any shard's
        self.started_at = time.monotonic()
        self.ready_after_s: float | None = None

    async def start(self) -> None:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self._topic)
        while not partitions:
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(self._topic)
        self._partitions = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._initial_target = await self._consumer.end_offsets(self._partitions)

    async def _prepare(self) -> None:
        """Load the snapshots (in ``run``, so the HTTP API is up meanwhile: /readyz says 503),
        then start each partition where the served shards need it."""
        if self._snapshots is not None:
            ends = {tp.partition: off for tp, off in self._initial_target.items()}
            for shard in self.shards.values():
                await self._restore(shard, ends)
        for tp in self._partitions:
            start = min(
                (s.start_offsets.get(tp.partition, 0) for s in self.shards.values()), default=0
            )
            self._consumer.seek(tp, start)
            self._applied[tp] = start

    async def _restore(self, shard: ShardIndex, end_offsets: dict[int, int]) -> None:
        """Load the shard's latest snapshot into its catalog; on any problem keep an empty
        catalog (full replay) and say why."""
        assert self._snapshots is not None
        started = time.perf_counter()
        want = snapshots.Snapshot(shard.shard, shard.shards, self._topic, {})
        try:
            with tempfile.TemporaryDirectory(prefix="cm-restore-") as tmp:
                path = os.path.join(tmp, "latest.snap")
                pointer = await self._snapshots.fetch(shard.shard, shard.shards, path)
                if pointer is None:
                    metrics.SNAPSHOT_RESTORES.labels("none").inc()
                    log.info("shard %d: no snapshot yet, replaying the registry", shard.shard)
                    return
                about = await asyncio.to_thread(_load_file, path, shard.catalog, want, end_offsets)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, snapshots.SnapshotUnusable) else repr(exc)
            shard.origin_problem = reason
            shard.catalog = WorkCatalog(shard=shard.shard)
            shard.start_offsets = {}
            metrics.SNAPSHOT_RESTORES.labels("unusable").inc()
            log.error(
                "shard %d: snapshot unusable (%s); replaying the whole registry",
                shard.shard,
                reason,
            )
            return
        shard.start_offsets = about.partitions
        shard.origin = SnapshotOrigin(
            key=pointer["key"],
            offsets=about.partitions,
            works=len(shard.catalog),
            created_at=str(pointer.get("created_at")),
            load_s=snapshots.elapsed(started),
        )
        shard.last_snapshot_at = time.monotonic()
        metrics.SNAPSHOT_RESTORES.labels("restored").inc()
        metrics.SNAPSHOT_SECONDS.labels("restore").observe(shard.origin.load_s)
        log.info(
            "shard %d: loaded snapshot %s (%d works, offsets %s) in %.2fs; replaying what follows",
            shard.shard,
            pointer["key"],
            len(shard.catalog),
            about.partitions,
            shard.origin.load_s,
        )

    async def stop(self) -> None:
        await self._consumer.stop()

    async def run(self) -> None:
        try:
            await self._prepare()
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
                await self._maybe_snapshot()
        finally:
            if self._writing is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self._writing), 20.0)
            await self._consumer.stop()

    def _report_lag(self, tp: TopicPartition) -> None:
        high = self._consumer.highwater(tp)
        if high is not None:
            metrics.CONSUMER_LAG.labels(
                METRICS_CONSUMER, WORKS_REGISTRY.name, str(tp.partition)
            ).set(max(high - self._applied[tp], 0))

    def _shard_for(self, record: ConsumerRecord, work_id: str) -> ShardIndex | None:
        """The served shard this record is for, or None (another shard's, or in its snapshot)."""
        shard = self.shards.get(shard_of(work_id, self._shard_count))
        if shard is None or record.offset < shard.start_offsets.get(record.partition, 0):
            return None
        return shard

    def _apply_all(self, records: list[ConsumerRecord]) -> None:
        labels = (METRICS_CONSUMER, WORKS_REGISTRY.name)
        metrics.CONSUMER_RECORDS_CONSUMED.labels(*labels).inc(len(records))
        self.records_read += len(records)
        for record in records:
            work_id = record.key.decode(errors="replace") if record.key else None
            shard = self._shard_for(record, work_id) if work_id else None
            if work_id and shard is None:
                continue  # another shard's work, or already in this shard's snapshot
            if record.value is None:
                if work_id and shard is not None:
                    shard.catalog.apply(work_id, None)
                    self._count(shard)
                metrics.CONSUMER_RECORDS_PROCESSED.labels(*labels).inc()
                continue
            try:
                event = decode_event(record.value).payload
                if not isinstance(event, WorkFingerprinted):
                    raise InvalidEvent(f"unexpected {type(event).__name__} in the registry")
                if shard is None:  # no key: the event names the work
                    work_id = event.work_id
                    shard = self._shard_for(record, work_id)
                    if shard is None:
                        continue
                if problem := indexable_problem(event.fingerprint):
                    raise InvalidEvent(f"work {event.work_id}: {problem}")
                shard.catalog.apply(event.work_id, event)
                self._count(shard)
            except Exception as exc:
                # Every replica reads the same record on every start: skipping (and counting) it
                # beats a crash loop. The work's latest state is unusable, so it leaves the index
                # (the same outcome before and after compaction drops its older records).
                self._skip(record, work_id, shard, exc)
                continue
            metrics.CONSUMER_RECORDS_PROCESSED.labels(*labels).inc()
        metrics.CONSUMER_LAST_PROCESSED.labels(*labels).set(time.time())
        for shard in self.shards.values():
            metrics.SHARD_WORKS.labels(str(shard.shard)).set(len(shard.catalog))

    def _count(self, shard: ShardIndex) -> None:
        shard.replayed += 1
        shard.since_snapshot += 1
        metrics.SHARD_REPLAYED_RECORDS.labels(str(shard.shard)).inc()

    def _skip(
        self,
        record: ConsumerRecord,
        work_id: str | None,
        shard: ShardIndex | None,
        exc: Exception,
    ) -> None:
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
        if work_id and shard is not None:
            with contextlib.suppress(Exception):
                shard.catalog.apply(work_id, None)
                self._count(shard)

    async def _mark_if_caught_up(self) -> None:
        if self.caught_up:
            return
        if all(self._applied.get(tp, 0) >= off for tp, off in self._initial_target.items()):
            self.caught_up = True
            self.ready_after_s = round(time.monotonic() - self.started_at, 3)
            metrics.REGISTRY_CAUGHT_UP.set(1)
            log.info(
                "registry caught up in %.2fs: %d records read, %s",
                self.ready_after_s,
                self.records_read,
                ", ".join(
                    f"shard {s.shard}: {len(s.catalog)} works, {s.replayed} replayed"
                    for s in self.shards.values()
                ),
            )

    # -- snapshots ----------------------------------------------------------------------------

    def _snapshot_due(self, shard: ShardIndex) -> bool:
        cfg = self._settings
        if shard.since_snapshot >= cfg.match_snapshot_every_records:
            return True
        return (
            shard.since_snapshot > 0
            and time.monotonic() - shard.last_snapshot_at >= cfg.match_snapshot_interval_s
        )

    async def _maybe_snapshot(self) -> None:
        if self._snapshots is None or not self.caught_up:
            return
        if self._writing is not None and not self._writing.done():
            return  # one write at a time; the next check catches up
        due = [s for s in self.shards.values() if self._snapshot_due(s)]
        if due:
            self._writing = asyncio.create_task(self._write(due), name="index-snapshot")

    async def snapshot_now(self) -> list[dict[str, object]]:
        """Write every served shard's snapshot now (operators, before a planned restart)."""
        if self._snapshots is None:
            raise RuntimeError("snapshots are off (CM_MATCH_SNAPSHOTS=false)")
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writing)
        self._writing = asyncio.create_task(self._write(list(self.shards.values())))
        return await self._writing  # type: ignore[return-value]

    async def _write(self, due: list[ShardIndex]) -> list[dict[str, object]]:
        """Capture each shard between two batches (the follower waits), then store them."""
        assert self._snapshots is not None
        written: list[dict[str, object]] = []
        for shard in due:
            started = time.perf_counter()
            # Offsets read before the capture: the catalog holds at least every record below
            # them (perhaps a few after, applied meanwhile: replaying those again converges on
            # the same latest state per work, the registry being a log of states).
            offsets = {tp.partition: off for tp, off in self._applied.items()}
            applied_since = shard.since_snapshot
            about = snapshots.Snapshot(shard.shard, shard.shards, self._topic, offsets)
            snap = await asyncio.to_thread(snapshots.capture, shard.catalog, about)
            shard.since_snapshot -= applied_since
            try:
                key = await self._snapshots.write(snap)
            except Exception as exc:
                shard.since_snapshot += applied_since
                log.warning("shard %d: storing its snapshot failed: %r", shard.shard, exc)
                continue
            finally:
                os.unlink(snap.path)
            shard.last_snapshot_at = time.monotonic()
            metrics.SNAPSHOTS_WRITTEN.labels(str(shard.shard)).inc()
            metrics.SNAPSHOT_BYTES.labels(str(shard.shard)).set(snap.size)
            metrics.SNAPSHOT_SECONDS.labels("write").observe(snapshots.elapsed(started))
            log.info(
                "shard %d: snapshot %s (%d works, %d bytes, offsets %s)",
                shard.shard,
                key,
                snap.works,
                snap.size,
                offsets,
            )
            written.append(
                {"shard": shard.shard, "key": key, "works": snap.works, "offsets": offsets}
            )
        return written

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


def _load_file(
    path: str, catalog: WorkCatalog, want: snapshots.Snapshot, ends: dict[int, int]
) -> snapshots.Snapshot:
    with open(path, "rb") as stream:
        return snapshots.load(stream, catalog, want, ends)
