"""A thin typed producer: payload in, envelope out, keyed by the topic's declared key."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from contentmatch_shared.availability import DependencyTimeout
from contentmatch_shared.events import encode_event, make_envelope
from contentmatch_shared.kafka.connection import new_producer
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import TopicSpec

# The largest record a service publishes (the local broker's message.max.bytes is the same).
MAX_RECORD_BYTES = 8 * 1024 * 1024


class EventProducer:
    """Publishes events with idempotent, fully acknowledged writes."""

    def __init__(self, settings: Settings, service: str) -> None:
        self._settings = settings
        self._service = service
        self._producer = new_producer(
            settings,
            # lz4 (through cramjam): a small fraction of the CPU of gzip (aiokafka's is level 9)
            # in every producer and in the broker (docs/throughput.md).
            compression_type="lz4",
            max_request_size=MAX_RECORD_BYTES,
            linger_ms=5,
        )

    @property
    def raw(self) -> AIOKafkaProducer:
        return self._producer

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(
        self,
        spec: TopicSpec,
        key: str,
        payload: BaseModel,
        *,
        correlation_id: str,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Send and wait for the broker's acknowledgement (the caller's side effect is durable).

        Bounded by ``kafka_send_timeout_s`` (:class:`DependencyTimeout` past it): during a Kafka
        outage a caller fails fast instead of waiting out the client's own timeouts. A send that
        timed out may still be delivered later; consumers are idempotent."""
        envelope = make_envelope(payload, producer=self._service, correlation_id=correlation_id)
        sending = self._producer.send_and_wait(
            self._settings.topic(spec.name),
            value=encode_event(envelope),
            key=key.encode(),
            headers=headers or [],
        )
        limit = self._settings.kafka_send_timeout_s
        try:
            return await asyncio.wait_for(sending, limit)
        except TimeoutError as exc:
            raise DependencyTimeout("Kafka", limit) from exc
