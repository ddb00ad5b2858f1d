"""The sender: consumes ``webhooks.deliveries`` and attempts each delivery, in order per upload.

Contract per command (``WebhookDeliveryDue``), all of one upload's commands arriving in one
partition, in order:
1. a command for an attempt the delivery already made is a duplicate: ignored;
2. the delivery joins its (webhook, upload) queue; if an earlier delivery heads the queue, it waits
   there (``queued``) and is attempted when that one is finished;
3. the head is attempted; on failure a retry is written to a delay topic *before* the record is
   updated (a crash in between makes a duplicate attempt, never a lost one);
4. once finished (delivered, failed past the retry window, or cancelled with its webhook), it leaves
   the queue and the next one is sent at once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiokafka import ConsumerRecord

from contentmatch_delivery.deliveries import FINAL_STATES, Attempt, Delivery, DeliveryLog
from contentmatch_delivery.hooks import WebhookStore
from contentmatch_delivery.poster import WebhookPoster
from contentmatch_delivery.schedule import RetrySchedule
from contentmatch_delivery.signing import SIGNATURE_HEADER, signature_header
from contentmatch_shared import metrics
from contentmatch_shared.events import Envelope, WebhookDeliveryDue, utcnow
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.topics import WEBHOOK_DELIVERIES

log = logging.getLogger(__name__)


def body_bytes(delivery: Delivery) -> bytes:
    return json.dumps(delivery.body, separators=(",", ":"), sort_keys=True).encode()


class DeliverySender:
    def __init__(
        self,
        hooks: WebhookStore,
        log_: DeliveryLog,
        poster: WebhookPoster,
        producer: EventProducer,
        schedule: RetrySchedule,
    ) -> None:
        self._hooks = hooks
        self._log = log_
        self._poster = poster
        self._producer = producer
        self._schedule = schedule

    async def __call__(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        command: WebhookDeliveryDue = envelope.payload
        tenant, webhook_id, upload_id = command.tenant, command.webhook_id, command.upload_id
        delivery = await self._log.get(tenant, webhook_id, command.delivery_id)
        pending = await self._log.queue(tenant, webhook_id, upload_id)
        if delivery is None or delivery.upload_id != upload_id:
            if command.delivery_id in pending:
                pending.remove(command.delivery_id)
                await self._finish_queue(tenant, webhook_id, upload_id, pending)
            return
        if delivery.state in FINAL_STATES:
            if delivery.delivery_id in pending:
                pending.remove(delivery.delivery_id)
            await self._finish_queue(tenant, webhook_id, upload_id, pending)
            return
        if command.attempt <= delivery.attempt_count:
            return  # a duplicate of a command already handled
        if delivery.delivery_id not in pending:
            pending.append(delivery.delivery_id)
        if pending[0] != delivery.delivery_id:
            if delivery.state != "queued":
                delivery.state = "queued"
                await self._log.put(delivery)
            await self._log.set_queue(tenant, webhook_id, upload_id, pending)
            return
        hook = await self._hooks.get(tenant, webhook_id)
        if hook is None:
            await self._finish(delivery, "cancelled", pending)
            return
        now = utcnow()
        body = body_bytes(delivery)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(
                hook.signing_secrets(now), int(now.timestamp()), body
            ),
            "ContentMatch-Event-Id": delivery.event_id,
            "ContentMatch-Event-Type": delivery.event_type,
            "ContentMatch-Delivery-Id": delivery.delivery_id,
            "ContentMatch-Attempt": str(command.attempt),
        }
        if delivery.first_attempt_at is None:
            delivery.first_attempt_at = now
            if delivery.replay_of is None:
                lag = (now - delivery.occurred_at).total_seconds()
                metrics.WEBHOOK_DISPATCH_LAG.labels(delivery.event_type).observe(max(lag, 0.0))
        result = await self._poster.post(hook.url, body, headers)
        metrics.WEBHOOK_ATTEMPTS.labels(delivery.event_type, result.outcome).inc()
        delivery.note(
            Attempt(
                attempt=command.attempt,
                at=now,
                outcome=result.outcome,
                status_code=result.status_code,
                error=result.error,
                duration_ms=result.duration_ms,
                response_excerpt=result.response_excerpt,
            )
        )
        if result.delivered:
            delivery.delivered_at = utcnow()
            await self._finish(delivery, "delivered", pending)
            return
        first = delivery.first_attempt_at or now
        due = self._schedule.next_attempt(first, utcnow(), command.attempt)
        if due is None:
            log.warning("webhook delivery %s failed: retry window over", delivery.delivery_id)
            await self._finish(delivery, "failed", pending)
            return
        topic = self._schedule.topic(command.attempt)
        retry = command.model_copy(update={"attempt": command.attempt + 1, "due_at": due})
        await self._producer.publish(topic, upload_id, retry, correlation_id=upload_id)
        metrics.WEBHOOK_RETRIES_SCHEDULED.labels(topic.name.rsplit(".", 1)[-1]).inc()
        delivery.state, delivery.next_attempt_at = "retrying", due
        await self._log.put(delivery)
        await self._log.set_queue(tenant, webhook_id, upload_id, pending)

    async def _finish(self, delivery: Delivery, state: str, pending: list[str]) -> None:
        delivery.state = state  # type: ignore[assignment]
        delivery.next_attempt_at = None
        await self._log.put(delivery)
        metrics.WEBHOOK_DELIVERIES.labels(delivery.event_type, state).inc()
        if delivery.delivery_id in pending:
            pending.remove(delivery.delivery_id)
        await self._finish_queue(delivery.tenant, delivery.webhook_id, delivery.upload_id, pending)

    async def _finish_queue(
        self, tenant: str, webhook_id: str, upload_id: str, pending: list[str]
    ) -> None:
        """Save the queue and send its new head, unless that one is already under way."""
        await self._log.set_queue(tenant, webhook_id, upload_id, pending)
        if not pending:
            return
        head = await self._log.get(tenant, webhook_id, pending[0])
        if head is None or head.state not in ("pending", "queued"):
            return  # finished, or retrying with its own retry scheduled
        command = WebhookDeliveryDue(
            delivery_id=head.delivery_id,
            webhook_id=webhook_id,
            tenant=tenant,
            upload_id=upload_id,
            attempt=head.attempt_count + 1,
            due_at=utcnow(),
        )
        await self._producer.publish(
            WEBHOOK_DELIVERIES, upload_id, command, correlation_id=upload_id
        )
