"""Dead letters for operators: list them, show one, redrive some back to their origin topic.

A dead letter is the original record (key and value unchanged) on ``<topic>.dlq`` with headers
naming its origin topic, partition and offset, the error, the failure class, the service and the
consumer group (see :mod:`.kafka.runner`). Redriving publishes the record again on its origin
topic, where the (idempotent) consumers handle it as new. Each redrive leaves a marker in the state
bucket (``dlq-redrives/<dlq topic>/<partition>/<offset>.json``), so that running the same redrive
twice sends nothing the second time unless forced.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from contentmatch_shared.kafka.connection import new_consumer, new_producer
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore
from contentmatch_shared.topics import CONSUMED_TOPICS, TopicSpec

MARKERS = "dlq-redrives"


@dataclass(frozen=True)
class DeadLetter:
    dlq: str  # the DLQ topic, without the settings' prefix
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    timestamp_ms: int
    redriven: list[dict[str, Any]] = field(default_factory=list)

    @property
    def origin(self) -> str:
        topic, partition, offset = (
            self.headers.get(f"origin_{k}", "?") for k in ("topic", "partition", "offset")
        )
        return f"{topic}/{partition}@{offset}"

    @property
    def at(self) -> str:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(timespec="seconds")

    def summary(self) -> dict[str, Any]:
        return {
            "dlq": self.dlq,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key.decode(errors="replace") if self.key is not None else None,
            "origin_topic": self.headers.get("origin_topic"),
            "origin_partition": self.headers.get("origin_partition"),
            "origin_offset": self.headers.get("origin_offset"),
            "service": self.headers.get("service"),
            "consumer_group": self.headers.get("consumer_group"),
            "failure": self.headers.get("failure"),
            "error": self.headers.get("error"),
            "attempts": self.headers.get("attempts"),
            "dead_lettered_at": self.at,
            "redriven": len(self.redriven),
        }


def dlq_specs(topic: str | None = None) -> list[TopicSpec]:
    """The DLQ topics, or the one of ``topic`` (given as the origin or the DLQ name)."""
    specs = [t.dlq for t in CONSUMED_TOPICS]
    if topic is None:
        return specs
    name = topic if topic.endswith(".dlq") else f"{topic}.dlq"
    chosen = [s for s in specs if s.name == name]
    if not chosen:
        known = ", ".join(t.name for t in CONSUMED_TOPICS)
        raise ValueError(f"no dead-letter topic for {topic!r} (topics: {known})")
    return chosen


def _marker_key(dlq: str, partition: int, offset: int) -> str:
    return f"{MARKERS}/{dlq}/{partition}/{offset:020d}.json"


async def _markers(store: ObjectStore, dlq: str) -> dict[tuple[int, int], str]:
    keys: list[str] = []
    after: str | None = None
    while page := await store.list_keys(
        store.settings.bucket_state, f"{MARKERS}/{dlq}/", start_after=after
    ):
        keys += page
        after = page[-1]
    found = {}
    for key in keys:
        partition, name = key.rsplit("/", 2)[-2:]
        if partition.isdigit() and name.endswith(".json") and name[:-5].isdigit():
            found[(int(partition), int(name[:-5]))] = key
    return found


async def read_dead_letters(
    settings: Settings, topic: str | None = None, *, with_markers: bool = True
) -> list[DeadLetter]:
    """Every record on the DLQ topics (or ``topic``'s), oldest first per topic."""
    specs = dlq_specs(topic)
    consumer = new_consumer(
        settings,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        for spec in specs:
            name = settings.topic(spec.name)
            partitions = consumer.partitions_for_topic(name)
            if partitions is None:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(name) or set()
            tps = [TopicPartition(name, p) for p in sorted(partitions)]
            if not tps:
                continue
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            records: list[ConsumerRecord] = []
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(*tps, timeout_ms=1000)
                records += [r for tp, rs in batch.items() for r in rs if r.offset < ends[tp]]
            letters += [
                DeadLetter(
                    dlq=spec.name,
                    partition=r.partition,
                    offset=r.offset,
                    key=r.key,
                    value=r.value,
                    headers={k: v.decode(errors="replace") for k, v in r.headers},
                    timestamp_ms=r.timestamp,
                )
                for r in sorted(records, key=lambda r: (r.partition, r.offset))
            ]
    finally:
        await consumer.stop()
    if with_markers and letters:
        store = ObjectStore(settings)
        for dlq in {d.dlq for d in letters}:
            marked = await _markers(store, dlq)
            for i, letter in enumerate(letters):
                if letter.dlq == dlq and (key := marked.get((letter.partition, letter.offset))):
                    value = await store.get_json(settings.bucket_state, key)
                    letters[i] = _with_redrives(letter, (value or {}).get("redrives", []))
    return letters


def _with_redrives(letter: DeadLetter, redrives: list[dict[str, Any]]) -> DeadLetter:
    return DeadLetter(**{**letter.__dict__, "redriven": list(redrives)})


@dataclass(frozen=True)
class RedriveResult:
    sent: list[DeadLetter]
    skipped: list[DeadLetter]  # redriven before (use force to send them again)


async def redrive(
    settings: Settings,
    topic: str,
    *,
    first: int | None = None,
    last: int | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> RedriveResult:
    """Publish the dead letters of ``topic`` with DLQ offsets in ``[first, last]`` (all when
    both are None) back on their origin topic; those redriven before only with ``force``."""
    (spec,) = dlq_specs(topic)
    letters = [
        d
        for d in await read_dead_letters(settings, spec.name)
        if (first is None or d.offset >= first) and (last is None or d.offset <= last)
    ]
    allowed = {settings.topic(t.name) for t in CONSUMED_TOPICS}
    for letter in letters:
        origin = letter.headers.get("origin_topic")
        if origin not in allowed:
            raise ValueError(
                f"{letter.dlq}@{letter.offset}: origin topic {origin!r} is not one of ours"
            )
    todo = [d for d in letters if force or not d.redriven]
    skipped = [d for d in letters if d not in todo]
    if dry_run or not todo:
        return RedriveResult(sent=todo if not dry_run else [], skipped=skipped)
    store = ObjectStore(settings)
    producer = new_producer(settings)
    await producer.start()
    try:
        for letter in todo:
            origin = letter.headers["origin_topic"]
            source = f"{settings.topic(letter.dlq)}/{letter.partition}@{letter.offset}"
            meta = await producer.send_and_wait(
                origin,
                value=letter.value,
                key=letter.key,
                headers=[("redriven_from", source.encode())],
            )
            redrives = [
                *letter.redriven,
                {
                    "at": datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="seconds"),
                    "to": f"{origin}/{meta.partition}@{meta.offset}",
                },
            ]
            # After the send: a crash in between redrives once more next time, which the
            # idempotent consumers absorb; the other order could lose the record.
            await store.put_json(
                settings.bucket_state,
                _marker_key(letter.dlq, letter.partition, letter.offset),
                {"redrives": redrives},
            )
    finally:
        await producer.stop()
    return RedriveResult(sent=todo, skipped=skipped)


def parse_offsets(text: str) -> tuple[int, int]:
    """``"12"`` or ``"12-40"`` (inclusive) into (first, last)."""
    first, sep, last = text.partition("-")
    try:
        lo, hi = int(first), int(last) if sep else int(first)
    except ValueError:
        raise ValueError(f"offsets must be N or N-M, not {text!r}") from None
    if lo < 0 or hi < lo:
        raise ValueError(f"offsets must be N or N-M with 0 <= N <= M, not {text!r}")
    return lo, hi


def render_value(value: bytes | None) -> str:
    """The record's value as indented JSON when it is JSON, else as text (or its size)."""
    if value is None:
        return "(tombstone)"
    try:
        return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except (UnicodeDecodeError, json.JSONDecodeError):
        text = value.decode(errors="replace")
        return text if text.isprintable() else f"({len(value)} bytes, not text) {text[:200]!r}"
