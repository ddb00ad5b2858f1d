"""The retry waiter: consumes the delay topics ``webhooks.retry.<n>`` and, when a retry comes
due, hands it back to ``webhooks.deliveries``.

The schedule lives in Kafka (the delay topics, committed offsets), so it survives restarts: a
waiting retry is uncommitted until it has been handed back, and a restarted waiter reads it
again and waits for what remains of its delay. A level's records share one delay, so each
partition comes due in order and waiting for the first is waiting for the earliest.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import ConsumerRecord

from contentmatch_shared.events import Envelope, WebhookDeliveryDue, utcnow
from contentmatch_shared.kafka.failures import DependencyUnavailable
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.topics import WEBHOOK_DELIVERIES


class RetryWaiter:
    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop waiting (shutdown): the waiting retries stay uncommitted and are read again."""
        self._stopping.set()

    async def __call__(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        command: WebhookDeliveryDue = envelope.payload
        wait_s = (command.due_at - utcnow()).total_seconds()
        if wait_s > 0:
            # The runner keeps polling while this partition's task waits (runner.py).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait_s)
        if self._stopping.is_set():
            raise DependencyUnavailable("shutting down; the retry is read again after the restart")
        await self._producer.publish(
            WEBHOOK_DELIVERIES, command.upload_id, command, correlation_id=envelope.correlation_id
        )
