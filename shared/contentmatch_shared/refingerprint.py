"""Re-fingerprint registered works: republish their ``works.submitted`` events.

Fingerprints grow new fields as the signals improve (the thumbnails the dense and fine checks
compare, for one); works registered before keep the old ones, and the matcher judges them
with what they carry. This replays each work's submission, as ingest recorded it, onto the
works topic: the fingerprint service recomputes the fingerprint from the stored media, the
registry entry is replaced, and every match replica re-adds the work (``add`` replaces a
work already indexed). The consumers are idempotent, so running it twice is harmless.

Works that failed (undecodable media) are left alone: their status would not change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from contentmatch_shared.events import WorkSubmitted, encode_event, make_envelope
from contentmatch_shared.kafka.connection import new_producer
from contentmatch_shared.settings import Settings, get_settings
from contentmatch_shared.storage import ObjectStore
from contentmatch_shared.topics import WORKS_SUBMITTED

log = logging.getLogger(__name__)

PRODUCER = "operator-refingerprint"
PAGE = 1000  # state keys listed per request


async def submitted_works(
    store: ObjectStore, tenant: str | None = None
) -> AsyncIterator[WorkSubmitted]:
    """Each registered work's submission as recorded (``works/<id>/submitted.json``), in id
    order, without the failed ones; only ``tenant``'s when given."""
    bucket = store.settings.bucket_state
    after: str | None = None
    failed = ""  # the last work seen with a failed fact: "failed" lists before "submitted"
    while True:
        keys = await store.list_keys(bucket, "works/", start_after=after, limit=PAGE)
        if not keys:
            return
        after = keys[-1]
        for key in keys:
            work_prefix, _, fact = key.rpartition("/")
            if fact == "failed.json":
                failed = work_prefix
            if fact != "submitted.json" or work_prefix == failed:
                continue
            value = await store.get_json(bucket, key)
            if value is None:
                continue
            work = WorkSubmitted.model_validate(value)
            if tenant is None or work.tenant == tenant:
                yield work


async def refingerprint_works(
    settings: Settings | None = None, *, tenant: str | None = None, dry_run: bool = False
) -> list[str]:
    """Republish the submissions of registered works (``tenant``'s only, when given); the
    ids, in order. ``dry_run``: list them without publishing."""
    settings = settings or get_settings()
    store = ObjectStore(settings)
    producer = None
    if not dry_run:
        producer = new_producer(settings)
        await producer.start()
    done: list[str] = []
    try:
        async for work in submitted_works(store, tenant):
            if producer is not None:
                envelope = make_envelope(work, producer=PRODUCER, correlation_id=work.work_id)
                await producer.send_and_wait(
                    settings.topic(WORKS_SUBMITTED.name),
                    encode_event(envelope),
                    key=work.work_id.encode(),
                )
            done.append(work.work_id)
    finally:
        if producer is not None:
            await producer.stop()
    log.info("%s %d works", "would republish" if dry_run else "republished", len(done))
    return done


def refingerprint(tenant: str | None = None, dry_run: bool = False) -> list[str]:
    return asyncio.run(refingerprint_works(tenant=tenant, dry_run=dry_run))
