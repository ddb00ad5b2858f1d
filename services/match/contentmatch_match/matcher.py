"""The upload matcher: fingerprinted uploads in, match results out."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import ConsumerRecord

from contentmatch_match.catalog import WorkCatalog
from contentmatch_match.registry import RegistryFollower
from contentmatch_match.result_bounds import bound_result
from contentmatch_shared import metrics
from contentmatch_shared.events import Envelope, UploadFingerprinted, UploadMatched, utcnow
from contentmatch_shared.kafka.failures import DependencyUnavailable
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.topics import UPLOADS_MATCHED

log = logging.getLogger(__name__)


class UploadMatcher:
    """Handler: search the catalog, publish ``uploads.matched`` (also when nothing matched).

    Before searching it waits (bounded) until the follower has applied everything the registry
    holds now, so a work registered before an upload is never missed by a lagging replica.
    """

    def __init__(
        self, runtime: ServiceRuntime, catalog: WorkCatalog, follower: RegistryFollower
    ) -> None:
        self._runtime = runtime
        self._catalog = catalog
        self._follower = follower

    async def __call__(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        payload = envelope.payload
        if not isinstance(payload, UploadFingerprinted):
            return
        wait_s = self._runtime.settings.registry_catchup_wait_s
        if not await self._follower.wait_until_current(wait_s):
            # Not caught up in time: retried by the runner rather than answered from a stale index.
            raise DependencyUnavailable(f"registry follower not current after {wait_s}s")
        started = time.perf_counter()
        matches = await asyncio.to_thread(
            self._catalog.search, payload.media_type, payload.fingerprint
        )
        metrics.MATCH_QUERY_SECONDS.labels(payload.media_type).observe(
            time.perf_counter() - started
        )
        # Sizing a large result serialises it: off the event loop.
        result = await asyncio.to_thread(
            bound_result,
            UploadMatched(
                upload_id=payload.upload_id,
                tenant=payload.tenant,
                media_type=payload.media_type,
                object=payload.object,
                metadata=payload.metadata,
                matches=matches,
                submitted_at=payload.submitted_at,
                matched_at=utcnow(),
                registry_size=len(self._catalog),
                duration_s=getattr(payload.fingerprint, "duration_s", None),
                provenance=payload.provenance,
            ),
        )
        await self._runtime.producer.publish(
            UPLOADS_MATCHED, payload.upload_id, result, correlation_id=envelope.correlation_id
        )
        if result.matches:
            for match in result.matches:
                metrics.MATCHES.labels(match.kind, "matched").inc()
        else:
            metrics.MATCHES.labels("none", "no_match").inc()
