"""The merger: joins every shard's answer for an upload into one ``uploads.matched`` verdict.

Consumer group ``match-merger`` on ``match.partials`` (keyed by upload id, so one upload's
answers meet in one partition, handled in order by one replica). Each answer is stored in
``bucket_state`` under ``match/merge/p<partition>/<upload_id>/<shards>-<shard>.json`` before its
offset is committed, so a merger killed between two answers loses nothing. When the answers of
all ``shards`` shards are there, they are merged (:func:`merge_partials`), the verdict is
published, a decision marker ``match/merge/decided/<upload_id>.json`` is written and the
answers are deleted. A sweeper fails an upload whose first answer is older than
``match_merge_deadline_s`` with no full set: ``media.failed`` code ``shard_missing``, naming the
missing shards. Answers arriving after a decision are dropped (counted as ``late``).
Redelivered answers rewrite the same keys; a verdict republished after a crash is the same
verdict (the report is keyed by upload id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from contentmatch_match.matcher import count_outcome
from contentmatch_match.result_bounds import bound_result
from contentmatch_shared import metrics
from contentmatch_shared.events import (
    Envelope,
    InvalidEvent,
    Match,
    MediaFailed,
    UploadMatched,
    UploadPartialMatched,
    decode_event,
    encode_event,
    utcnow,
)
from contentmatch_shared.kafka.runner import ConsumerRunner
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.topics import MEDIA_FAILED, UPLOADS_MATCHED

log = logging.getLogger(__name__)

PREFIX = "match/merge/"
BACKGROUND_SIGNAL = "background"  # the audio index's background pass (index/audio.py)


def merge_partials(partials: list[UploadPartialMatched]) -> UploadMatched:
    """One verdict from the answers of every shard: the matches of all, best first (score, then
    work id: the order a single index gives), a work found twice (while resharding) once at
    its best; the works of all shards counted. Independent of the answers' arrival order."""
    if not partials:
        raise ValueError("no answers to merge")
    partials = sorted(partials, key=lambda p: p.shard)
    first = partials[0]
    shards = {p.shard for p in partials}
    if len(shards) != len(partials) or shards != set(range(first.shards)):
        raise ValueError(f"answers of shards {sorted(shards)} are not one each of {first.shards}")
    if any(p.upload_id != first.upload_id or p.shards != first.shards for p in partials):
        raise ValueError("answers of different uploads or shard counts")
    # One index runs the audio background pass only when nothing else matched: a shard that
    # found nothing ran it on its own works, so its background hits stand only if no shard
    # found anything else.
    direct = any(m.signal != BACKGROUND_SIGNAL for p in partials for m in p.matches)
    best: dict[str, Match] = {}
    for partial in partials:
        for match in partial.matches:
            if direct and match.signal == BACKGROUND_SIGNAL:
                continue
            held = best.get(match.work_id)
            if held is None or match.score > held.score:
                best[match.work_id] = match
    return UploadMatched(
        upload_id=first.upload_id,
        tenant=first.tenant,
        media_type=first.media_type,
        object=first.object,
        metadata=first.metadata,
        matches=sorted(best.values(), key=lambda m: (-m.score, m.work_id)),
        submitted_at=first.submitted_at,
        matched_at=max(p.matched_at for p in partials),
        registry_size=sum(p.registry_size for p in partials),
        duration_s=first.duration_s,
        provenance=first.provenance,
    )


def _folder(partition: int, upload_id: str) -> str:
    return f"{PREFIX}p{partition}/{upload_id}/"


def _decided(upload_id: str) -> str:
    return f"{PREFIX}decided/{upload_id}.json"


class PartialMerger:
    """Handler of ``match.partials`` plus the deadline sweeper (:meth:`sweep`)."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self._runtime = runtime
        self._store = runtime.store
        self._bucket = runtime.settings.bucket_state
        self._deadline_s = runtime.settings.match_merge_deadline_s
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.runner: ConsumerRunner | None = None

    async def __call__(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        partial = envelope.payload
        if not isinstance(partial, UploadPartialMatched):
            raise InvalidEvent(f"unexpected {envelope.event_type} on match.partials")
        if partial.shard >= partial.shards:
            raise InvalidEvent(f"shard {partial.shard} of {partial.shards}")
        upload_id = partial.upload_id
        lock = self._locks[upload_id]
        async with lock:
            if await self._store.exists(self._bucket, _decided(upload_id)):
                metrics.MERGES.labels("late").inc()
                log.info("upload %s: shard %d answered after the decision", upload_id,
                         partial.shard)  # fmt: skip
            else:
                key = f"{_folder(record.partition, upload_id)}{partial.shards}-{partial.shard}.json"
                await self._store.put_bytes(
                    self._bucket, key, encode_event(envelope), "application/json"
                )
                await self._decide(record.partition, upload_id, deadline_passed=False)
        if not lock.locked():
            self._locks.pop(upload_id, None)

    async def _decide(self, partition: int, upload_id: str, *, deadline_passed: bool) -> None:
        """Publish the verdict if every shard answered, or the failure once the deadline passed."""
        keys = await self._store.list_keys(self._bucket, _folder(partition, upload_id))
        answers: dict[int, dict[int, str]] = defaultdict(dict)
        for key in keys:
            shards, _, shard = key.rsplit("/", 1)[-1].removesuffix(".json").partition("-")
            with contextlib.suppress(ValueError):
                answers[int(shards)][int(shard)] = key
        complete = sorted(n for n, got in answers.items() if set(got) == set(range(n)))
        if not complete and not deadline_passed:
            return
        envelopes = []
        for key in answers[complete[-1]].values() if complete else keys:
            data = await self._store.get_bytes(self._bucket, key)
            if data is not None:
                envelopes.append(decode_event(data))
        if not envelopes:
            return
        partials = [e.payload for e in envelopes if isinstance(e.payload, UploadPartialMatched)]
        correlation_id = envelopes[0].correlation_id
        first_at = min(p.matched_at for p in partials)
        if complete:
            verdict = await asyncio.to_thread(lambda: bound_result(merge_partials(partials)))
            await self._runtime.producer.publish(
                UPLOADS_MATCHED, upload_id, verdict, correlation_id=correlation_id
            )
            outcome = "merged"
            count_outcome(verdict)
            metrics.MERGE_WAIT_SECONDS.observe(max(0.0, (utcnow() - first_at).total_seconds()))
        else:
            expected = max(answers) if answers else 0
            missing = sorted(set(range(expected)) - set(answers.get(expected, {})))
            sample = partials[0]
            await self._runtime.producer.publish(
                MEDIA_FAILED,
                upload_id,
                MediaFailed(
                    subject="upload",
                    subject_id=upload_id,
                    tenant=sample.tenant,
                    stage="match",
                    code="shard_missing",
                    message=f"match shard(s) {missing} of {expected} did not answer within "
                    f"{self._deadline_s:g}s; the upload can be submitted again",
                    failed_at=utcnow(),
                ),
                correlation_id=correlation_id,
            )
            outcome = "shard_missing"
            log.error("upload %s failed: shards %s of %d never answered", upload_id, missing,
                      expected)  # fmt: skip
        metrics.MERGES.labels(outcome).inc()
        await self._store.put_json(
            self._bucket, _decided(upload_id), {"outcome": outcome, "at": utcnow().isoformat()}
        )
        for key in keys:
            await self._store.delete(self._bucket, key)

    async def sweep(self) -> None:
        """Forever: fail the uploads of this replica's partitions that waited past the deadline."""
        interval = min(5.0, max(0.5, self._deadline_s / 10))
        while True:
            await asyncio.sleep(interval)
            try:
                await self._sweep_once()
            except Exception as exc:  # S3 away: the next round tries again
                log.warning("merge sweeper: %r", exc)

    async def _sweep_once(self) -> None:
        if self.runner is None:
            return
        now = datetime.now(UTC)
        for tp in sorted(self.runner.assignment(), key=lambda tp: tp.partition):
            oldest: dict[str, datetime] = {}
            prefix = f"{PREFIX}p{tp.partition}/"
            for key, modified in await self._store.list_modified(self._bucket, prefix):
                upload_id = key[len(prefix) :].split("/", 1)[0]
                if upload_id not in oldest or modified < oldest[upload_id]:
                    oldest[upload_id] = modified
            for upload_id, since in oldest.items():
                if (now - since).total_seconds() < self._deadline_s:
                    continue
                lock = self._locks[upload_id]
                async with lock:
                    await self._decide(tp.partition, upload_id, deadline_passed=True)
                if not lock.locked():
                    self._locks.pop(upload_id, None)
