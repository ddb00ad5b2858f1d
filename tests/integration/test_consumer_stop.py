"""A consumer at its dead-letter limit stops alone: the service's HTTP API and probes stay up."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from prometheus_client import REGISTRY

from contentmatch_shared.events import Envelope
from contentmatch_shared.http import install_common
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import UPLOADS_SUBMITTED


async def test_a_consumer_at_its_dead_letter_limit_stops_and_the_api_stays_up(
    isolated: Settings,
) -> None:
    settings = isolated.model_copy(update={"consumer_dlq_limit": 2})
    runtime = ServiceRuntime(settings, "test")
    await runtime.start()
    try:

        async def handle(envelope: Envelope[Any], record: ConsumerRecord) -> None:
            return None

        runner = await runtime.add_consumer("stop-test", [UPLOADS_SUBMITTED], handle)
        topic = settings.topic(UPLOADS_SUBMITTED.name)
        for i in range(5):
            await runtime.producer.raw.send_and_wait(
                topic, b"garbage", key=f"k{i}".encode(), partition=0
            )
        deadline = asyncio.get_running_loop().time() + 30
        while runner.stopped is None:
            assert asyncio.get_running_loop().time() < deadline, "the consumer never stopped"
            await asyncio.sleep(0.1)

        app = FastAPI()
        install_common(app, "test", runtime.ready, runtime.broken, runtime.consumers)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            health = await client.get("/healthz")
            ready = await client.get("/readyz")
        assert health.status_code == 200, health.text  # liveness must not restart the API
        assert ready.status_code == 200, ready.text  # and it keeps receiving traffic
        state = ready.json()["consumers"]["stop-test"]
        assert state.startswith("stopped: 3 consecutive dead letters"), state
        assert health.json()["consumers"] == ready.json()["consumers"]
        assert runtime.broken() is None
        assert REGISTRY.get_sample_value("cm_consumer_stopped", {"consumer": "stop-test"}) == 1
    finally:
        await runtime.stop()
