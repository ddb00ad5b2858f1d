"""The upload pipeline's backlog, as ingest reads it to push back on platforms.

The backlog is the sum, over the pipeline's consumer groups, of the records each group has not
committed yet on its input topics (end offset minus committed offset): uploads waiting to be
fingerprinted, matched and reported, plus those in flight. A background task reads it every
``ingest_backlog_refresh_s`` (two Kafka requests per group and one for the end offsets), so a
request only looks at a number. Unknown (Kafka unreachable, no group yet) counts as no backlog:
an outage is refused by the reachability check instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contentmatch_shared import metrics
from contentmatch_shared.kafka.connection import new_admin, new_consumer
from contentmatch_shared.match_groups import MERGER_GROUP, shard_groups
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import (
    MATCH_PARTIALS,
    UPLOADS_FINGERPRINTED,
    UPLOADS_MATCHED,
    UPLOADS_SUBMITTED,
    WORKS_SUBMITTED,
    TopicSpec,
)

# Each consumer group of the upload pipeline, and the topics it is behind on.
PIPELINE_GROUPS: dict[str, tuple[TopicSpec, ...]] = {
    "fingerprint": (UPLOADS_SUBMITTED, WORKS_SUBMITTED),
    "match": (UPLOADS_FINGERPRINTED,),
    "report": (UPLOADS_MATCHED,),
}

log = logging.getLogger(__name__)


def pipeline_groups(settings: Settings) -> dict[str, tuple[TopicSpec, ...]]:
    """``PIPELINE_GROUPS`` as deployed: with shards, match is one group per shard (each reads
    every upload) and the merger's group on the shards' answers."""
    groups = dict(PIPELINE_GROUPS)
    if settings.match_shards > 1:
        del groups["match"]
        groups |= {g: (UPLOADS_FINGERPRINTED,) for g in shard_groups(settings.match_shards)}
        groups[MERGER_GROUP] = (MATCH_PARTIALS,)
    return groups


class BacklogMonitor:
    """Reads the pipeline's backlog in the background; :attr:`records` is the last reading."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.limit = settings.ingest_max_backlog
        self.records: int | None = None
        self.per_group: dict[str, int] = {}
        self.read_at = 0.0
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    def full(self) -> bool:
        """Whether new uploads should wait: the last reading (if recent) is at the limit."""
        if not self.limit or self.records is None:
            return False
        stale = time.monotonic() - self.read_at > 10 * self._settings.ingest_backlog_refresh_s
        return not stale and self.records >= self.limit

    async def run(self) -> None:
        metrics.PIPELINE_BACKLOG_LIMIT.set(self.limit)
        try:
            while True:
                try:
                    await self.refresh()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("cannot read the pipeline backlog: %r", exc)
                    await self._close()
                await asyncio.sleep(self._settings.ingest_backlog_refresh_s)
        finally:
            await self._close()

    async def refresh(self) -> None:
        if self._admin is None:
            self._admin = new_admin(self._settings)
            await self._admin.start()
        if self._consumer is None:
            self._consumer = new_consumer(self._settings, group_id=None, enable_auto_commit=False)
            await self._consumer.start()
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group, specs in pipeline_groups(self._settings).items():
            topics = {self._settings.topic(s.name) for s in specs}
            offsets = await self._admin.list_consumer_group_offsets(group)
            committed[group] = {
                tp: om.offset for tp, om in offsets.items() if tp.topic in topics and om.offset >= 0
            }
        partitions = [tp for group in committed.values() for tp in group]
        ends = await self._consumer.end_offsets(partitions) if partitions else {}
        per_group = {
            group: sum(max(ends.get(tp, off) - off, 0) for tp, off in offsets.items())
            for group, offsets in committed.items()
        }
        self.per_group = per_group
        # Every shard reads every upload: the match stage is as far behind as its slowest shard
        # (and the merger's records are one per shard per upload).
        shards = self._settings.match_shards
        of_shards = set(shard_groups(shards)) if shards > 1 else set()
        records = max((lag for g, lag in per_group.items() if g in of_shards), default=0)
        for group, lag in per_group.items():
            if group not in of_shards:
                records += lag // shards if group == MERGER_GROUP else lag
        self.records = records
        self.read_at = time.monotonic()
        for group, lag in per_group.items():
            metrics.PIPELINE_BACKLOG.labels(group).set(lag)

    async def _close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        with contextlib.suppress(Exception):
            if consumer is not None:
                await consumer.stop()
        with contextlib.suppress(Exception):
            if admin is not None:
                await admin.close()
