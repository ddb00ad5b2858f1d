"""The topic registry: every Kafka topic the system uses, declared once.

Each topic names its key, cleanup policy and the event type it carries. Dead-letter topics are
declared here too (``<topic>.dlq``), not created on the fly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str  # which id keys the records, so that per-key order holds
    event_type: str
    cleanup_policy: Literal["delete", "compact"] = "delete"
    partitions: int | None = None  # None: the cluster default from settings
    retention_ms: int | None = None
    description: str = ""
    # LogAppendTime: the broker dates each record, so its producer cannot backdate it.
    timestamp_type: Literal["CreateTime", "LogAppendTime"] = "CreateTime"

    @property
    def dlq(self) -> TopicSpec:
        return TopicSpec(
            name=f"{self.name}.dlq",
            key=self.key,
            event_type=self.event_type,
            partitions=1,
            retention_ms=30 * 24 * 3600 * 1000,
            description=f"Poison messages from {self.name}, with the reason in headers.",
        )


WORKS_SUBMITTED = TopicSpec(
    name="works.submitted",
    key="work_id",
    event_type="work.submitted",
    description="A work or AI output was stored by ingest and awaits fingerprinting.",
)
UPLOADS_SUBMITTED = TopicSpec(
    name="uploads.submitted",
    key="upload_id",
    event_type="upload.submitted",
    description="An upload was stored (by ingest or a platform directly) and awaits matching.",
    timestamp_type="LogAppendTime",  # an upload token's expiry is judged on the broker's clock
)
WORKS_REGISTRY = TopicSpec(
    name="works.registry",
    key="work_id",
    event_type="work.fingerprinted",
    cleanup_policy="compact",
    description="Every registered work's metadata and fingerprint: the source of the match index.",
)
UPLOADS_FINGERPRINTED = TopicSpec(
    name="uploads.fingerprinted",
    key="upload_id",
    event_type="upload.fingerprinted",
    description="An upload's fingerprint, ready to be matched.",
)
UPLOADS_MATCHED = TopicSpec(
    name="uploads.matched",
    key="upload_id",
    event_type="upload.matched",
    description="The match result of an upload (possibly no matches).",
)
MEDIA_FAILED = TopicSpec(
    name="media.failed",
    key="subject_id",
    event_type="media.failed",
    description="A work or upload could not be processed (undecodable, too short...).",
)
MATCH_PARTIALS = TopicSpec(
    name="match.partials",
    key="upload_id",
    event_type="upload.partial_matched",
    description="One shard's matches for an upload; the merger publishes uploads.matched once "
    "every shard answered (only with CM_MATCH_SHARDS above 1).",
)
REPORTS_CREATED = TopicSpec(
    name="reports.created",
    key="upload_id",
    event_type="report.created",
    description="A report was stored; for downstream systems (webhooks, ticketing).",
)

WEBHOOK_DELIVERIES = TopicSpec(
    name="webhooks.deliveries",
    key="upload_id",  # one upload's deliveries are attempted by one consumer, in order
    event_type="webhook.delivery_due",
    description="A webhook delivery to attempt now (new, replayed, or a retry that came due).",
)
# Delay topics of webhook retries: the n-th retry waits in level min(n, len) until it is due, then
# goes back to webhooks.deliveries. Records of one level share one delay, so they come due in
# the order they were written (docs/webhooks.md: the schedule).
WEBHOOK_RETRIES: tuple[TopicSpec, ...] = tuple(
    TopicSpec(
        name=f"webhooks.retry.{level}",
        key="upload_id",
        event_type="webhook.delivery_due",
        retention_ms=7 * 24 * 3600 * 1000,
        description=f"Webhook deliveries waiting for their retry (level {level} of the backoff).",
    )
    for level in range(1, 8)
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    WORKS_SUBMITTED,
    UPLOADS_SUBMITTED,
    WORKS_REGISTRY,
    UPLOADS_FINGERPRINTED,
    UPLOADS_MATCHED,
    MEDIA_FAILED,
    REPORTS_CREATED,
    WEBHOOK_DELIVERIES,
    *WEBHOOK_RETRIES,
    MATCH_PARTIALS,
)
# Consumed topics get a dead-letter topic.
CONSUMED_TOPICS: tuple[TopicSpec, ...] = (
    WORKS_SUBMITTED,
    UPLOADS_SUBMITTED,
    WORKS_REGISTRY,
    UPLOADS_FINGERPRINTED,
    UPLOADS_MATCHED,
    MEDIA_FAILED,
    REPORTS_CREATED,
    WEBHOOK_DELIVERIES,
    *WEBHOOK_RETRIES,
    MATCH_PARTIALS,
)


def all_specs() -> list[TopicSpec]:
    return [*ALL_TOPICS, *(t.dlq for t in CONSUMED_TOPICS)]


def by_name(name: str) -> TopicSpec:
    for spec in all_specs():
        if spec.name == name:
            return spec
    raise KeyError(name)
