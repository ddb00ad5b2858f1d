"""Webhook retries on real Kafka and S3: a retry waiting in a delay topic survives a restart of
the delivery consumers, and an event read twice is delivered once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from contentmatch_delivery.deliveries import DeliveryLog
from contentmatch_delivery.fanout import DeliveryFanout
from contentmatch_delivery.hooks import WebhookStore
from contentmatch_delivery.poster import WebhookPoster
from contentmatch_delivery.retries import RetryWaiter
from contentmatch_delivery.schedule import RetrySchedule
from contentmatch_delivery.sender import DeliverySender
from contentmatch_delivery.signing import SIGNATURE_HEADER, verify
from contentmatch_shared.events import ObjectRef, UploadMatched, UploadMetadata
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import UPLOADS_MATCHED, WEBHOOK_DELIVERIES, WEBHOOK_RETRIES
from tests.support.webhook_receiver import WebhookReceiver

RECEIVER_PORT = 19663


@asynccontextmanager
async def delivery_consumers(settings: Settings, tag: str) -> AsyncIterator[ServiceRuntime]:
    """The delivery service's three consumers (groups of this test's own), as the app runs them."""
    runtime = ServiceRuntime(settings, "delivery")
    await runtime.start()
    hooks = WebhookStore(runtime.store, settings)
    log = DeliveryLog(runtime.store, settings)
    poster = WebhookPoster(settings)
    waiter = RetryWaiter(runtime.producer)
    sender = DeliverySender(
        hooks, log, poster, runtime.producer, RetrySchedule.from_settings(settings)
    )
    fanout = DeliveryFanout(hooks, log, runtime.store, runtime.producer, settings)
    await runtime.add_consumer(f"it-{tag}-sender", [WEBHOOK_DELIVERIES], sender)
    await runtime.add_consumer(f"it-{tag}-retry", list(WEBHOOK_RETRIES), waiter)
    await runtime.add_consumer(f"it-{tag}-fanout", [UPLOADS_MATCHED], fanout)
    try:
        yield runtime
    finally:
        for runner in runtime.runners:
            runner.stop()
        waiter.stop()
        await runtime.stop()
        await poster.close()


async def _until(check, timeout_s: float = 60):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_a_waiting_retry_survives_a_restart_and_duplicates_collapse(
    isolated: Settings,
) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = isolated.model_copy(
        update={
            "webhook_allow_private_urls": True,
            "webhook_retry_base_s": 4.0,  # long enough to stop the consumers while it waits
            "webhook_retry_factor": 1.0,
            "webhook_retry_window_s": 600.0,
            "webhook_cache_ttl_s": 0.0,
        }
    )
    receiver = WebhookReceiver(RECEIVER_PORT).start()
    receiver.script["/hook"] = [500]
    upload_id = f"upl_{uuid.uuid4().hex}"
    event = UploadMatched(
        upload_id=upload_id,
        tenant="tube",
        media_type="image",
        object=ObjectRef(bucket="b", key="k"),
        metadata=UploadMetadata(external_id="x-1"),
        matches=[],
        submitted_at=datetime.now(UTC),
        matched_at=datetime.now(UTC),
    )
    try:
        async with delivery_consumers(settings, tag) as runtime:
            hooks = WebhookStore(runtime.store, settings)
            hook = await hooks.create(
                "tube", "platform", f"{receiver.url}/hook", ["upload.verdict"], None, "test"
            )
            await hooks.create(  # another tenant's webhook: never called
                "vidshare", "platform", f"{receiver.url}/other", ["upload.verdict"], None, "test"
            )
            for _ in range(2):  # the same verdict published twice
                await runtime.producer.publish(
                    UPLOADS_MATCHED, upload_id, event, correlation_id=upload_id
                )

            async def first_refused() -> bool:
                return len(receiver.at("/hook")) >= 1

            assert await _until(first_refused), "the first attempt never came"
            log = DeliveryLog(runtime.store, settings)

            async def retrying() -> bool:
                page, _ = await log.page("tube", hook.webhook_id, cursor=None, limit=10)
                return bool(page) and page[0].state == "retrying"

            assert await _until(retrying)
        # Stopped while the retry waits in its delay topic: nothing but Kafka holds it now.
        assert len(receiver.at("/hook")) == 1
        async with delivery_consumers(settings, tag) as runtime:
            log = DeliveryLog(runtime.store, settings)

            async def delivered() -> list:  # type: ignore[type-arg]
                page, _ = await log.page("tube", hook.webhook_id, cursor=None, limit=10)
                return page if page and page[0].state == "delivered" else []

            page = await _until(delivered)
            assert page, "the retry was lost with the restart"
            await asyncio.sleep(1.0)  # a duplicate would come now
        (delivery,) = page
        assert [a.outcome for a in delivery.attempts] == ["http_error", "delivered"]
        got = receiver.at("/hook")
        assert [r.status for r in got] == [500, 200]
        assert got[0].json()["id"] == got[1].json()["id"]
        verify(got[1].headers.get(SIGNATURE_HEADER), got[1].body, hook.secret)
        assert got[1].json()["data"]["upload_id"] == upload_id
        assert receiver.at("/other") == []
    finally:
        receiver.stop()
