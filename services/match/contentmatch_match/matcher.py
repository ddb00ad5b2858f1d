"""The upload matcher: fingerprinted uploads in, one shard's matches out.

With one shard its answer is the verdict (``uploads.matched``); with several it is a partial
answer (``match.partials``) that the merger joins with the other shards' (``merger``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import ConsumerRecord

from contentmatch_match.registry import RegistryFollower
from contentmatch_match.result_bounds import bound_result
from contentmatch_match.sharding import ShardIndex
from contentmatch_shared import metrics
from contentmatch_shared.events import (
    Envelope,
    UploadFingerprinted,
    UploadMatched,
    UploadPartialMatched,
    utcnow,
)
from contentmatch_shared.kafka.failures import DependencyUnavailable
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.topics import MATCH_PARTIALS, UPLOADS_MATCHED

log = logging.getLogger(__name__)


def count_outcome(result: UploadMatched) -> None:
    if result.matches:
        for match in result.matches:
            metrics.MATCHES.labels(match.kind, "matched").inc()
    else:
        metrics.MATCHES.labels("none", "no_match").inc()


class UploadMatcher:
    """Handler: search one shard's catalog, publish its answer (also when nothing matched).

    Before searching it waits (bounded) until the follower has applied everything the registry
    holds now, so a work registered before an upload is never missed by a lagging replica.
    """

    def __init__(
        self, runtime: ServiceRuntime, shard: ShardIndex, follower: RegistryFollower
    ) -> None:
        self._runtime = runtime
        self._shard = shard
        self._follower = follower

    async def __call__(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        payload = envelope.payload
        if not isinstance(payload, UploadFingerprinted):
            return
        wait_s = self._runtime.settings.registry_catchup_wait_s
        if not await self._follower.wait_until_current(wait_s):
            # Not caught up in time: retried by the runner rather than answered from a stale index.
            raise DependencyUnavailable(f"registry follower not current after {wait_s}s")
        catalog = self._shard.catalog
        started = time.perf_counter()
        matches = await asyncio.to_thread(catalog.search, payload.media_type, payload.fingerprint)
        metrics.MATCH_QUERY_SECONDS.labels(payload.media_type).observe(
            time.perf_counter() - started
        )
        fields: dict[str, Any] = {
            "upload_id": payload.upload_id,
            "tenant": payload.tenant,
            "media_type": payload.media_type,
            "object": payload.object,
            "metadata": payload.metadata,
            "matches": matches,
            "submitted_at": payload.submitted_at,
            "matched_at": utcnow(),
            "registry_size": len(catalog),
            "duration_s": getattr(payload.fingerprint, "duration_s", None),
            "provenance": payload.provenance,
        }
        shards = self._shard.shards
        # Sizing a large result serialises it: off the event loop.
        if shards == 1:
            result = await asyncio.to_thread(bound_result, UploadMatched(**fields))
            await self._runtime.producer.publish(
                UPLOADS_MATCHED, payload.upload_id, result, correlation_id=envelope.correlation_id
            )
            count_outcome(result)
            return
        partial = UploadPartialMatched(**fields, shard=self._shard.shard, shards=shards)
        partial = await asyncio.to_thread(bound_result, partial)
        await self._runtime.producer.publish(
            MATCH_PARTIALS, payload.upload_id, partial, correlation_id=envelope.correlation_id
        )
