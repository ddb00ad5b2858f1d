"""Creates the registry's topics at service start (the broker does not auto-create)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contentmatch_shared.kafka.connection import new_admin
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import TopicSpec, all_specs

log = logging.getLogger(__name__)


def _new_topic(spec: TopicSpec, settings: Settings) -> NewTopic:
    configs = {"cleanup.policy": spec.cleanup_policy}
    if spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    if spec.timestamp_type != "CreateTime":
        configs["message.timestamp.type"] = spec.timestamp_type
    if spec.cleanup_policy == "compact":
        # Compact soon enough that a rebuild reads little more than the live set.
        configs["min.cleanable.dirty.ratio"] = "0.1"
        configs["segment.ms"] = str(6 * 3600 * 1000)
    return NewTopic(
        name=settings.topic(spec.name),
        num_partitions=spec.partitions or settings.topic_partitions,
        replication_factor=1,
        topic_configs=configs,
    )


async def ensure_topics(settings: Settings, timeout_s: float = 60.0) -> None:
    """Create any missing topic; safe to run from every replica at once."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = new_admin(settings)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                _new_topic(s, settings)
                for s in all_specs()
                if settings.topic(s.name) not in existing
            ]
            if missing:
                try:
                    await admin.create_topics(missing)
                    log.info("created topics %s", [t.name for t in missing])
                except TopicAlreadyExistsError:
                    pass  # another replica won the race
            return
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("kafka not ready for topic creation (%s); retrying", exc)
            await asyncio.sleep(1.0)
        finally:
            await admin.close()
