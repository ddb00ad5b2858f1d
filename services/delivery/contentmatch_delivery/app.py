"""The delivery service: the webhook API and the three consumers that push to webhooks.

- ``delivery-fanout`` reads the pipeline's results (uploads.matched, media.failed,
  reports.created) and records a delivery per subscribed webhook;
- ``delivery-sender`` attempts deliveries (webhooks.deliveries), in order per upload;
- ``delivery-retry`` holds retries in the delay topics until they are due.
Its own process and consumer groups: however slow a receiver, matching never waits for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from contentmatch_delivery.deliveries import DeliveryLog
from contentmatch_delivery.fanout import DeliveryFanout
from contentmatch_delivery.hooks import WebhookStore
from contentmatch_delivery.poster import WebhookPoster
from contentmatch_delivery.retries import RetryWaiter
from contentmatch_delivery.routes import webhooks
from contentmatch_delivery.schedule import RetrySchedule
from contentmatch_delivery.sender import DeliverySender
from contentmatch_shared.http import install_common
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.settings import Settings, get_settings
from contentmatch_shared.topics import (
    MEDIA_FAILED,
    REPORTS_CREATED,
    UPLOADS_MATCHED,
    WEBHOOK_DELIVERIES,
    WEBHOOK_RETRIES,
)

SERVICE = "delivery"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        hooks = WebhookStore(runtime.store, settings)
        log = DeliveryLog(runtime.store, settings)
        poster = WebhookPoster(settings)
        waiter = RetryWaiter(runtime.producer)
        app.state.settings = settings
        app.state.runtime = runtime
        app.state.keys = runtime.keys
        app.state.hooks = hooks
        app.state.deliveries = log
        app.state.producer = runtime.producer
        sender = DeliverySender(
            hooks, log, poster, runtime.producer, RetrySchedule.from_settings(settings)
        )
        fanout = DeliveryFanout(hooks, log, runtime.store, runtime.producer, settings)
        await runtime.add_consumer("delivery-sender", [WEBHOOK_DELIVERIES], sender)
        await runtime.add_consumer("delivery-retry", list(WEBHOOK_RETRIES), waiter)
        await runtime.add_consumer(
            "delivery-fanout", [UPLOADS_MATCHED, MEDIA_FAILED, REPORTS_CREATED], fanout
        )
        try:
            yield
        finally:
            for runner in runtime.runners:
                runner.stop()
            waiter.stop()
            await runtime.stop()
            await poster.close()

    app = FastAPI(title="contentmatch delivery", version="1", lifespan=lifespan)
    install_common(
        app,
        SERVICE,
        runtime.ready,
        runtime.broken,
        runtime.consumers,
        guard=runtime.guard(),
        retry_after_s=settings.unavailable_retry_after_s,
    )
    app.include_router(webhooks.router)
    return app
