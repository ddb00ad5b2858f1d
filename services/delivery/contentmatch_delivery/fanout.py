"""The fan-out: pipeline events become deliveries to the webhooks of the tenants they concern.

- ``upload.matched`` and an upload's ``media.failed``: an ``upload.verdict`` to the platform's
  webhooks (the platform whose upload it is);
- ``report.created``: a ``report.created`` to the platform's webhooks and to those of the
  rightsholder whose work the report is about.
A failure whose ids were chosen by an unauthenticated publisher names no trustworthy tenant and
is never delivered. Each delivery is recorded under the receiving tenant before its command is
published; the cause (an upload's verdict, a report) maps to one delivery per webhook, so an event
read twice (or produced twice) is delivered once.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord

from contentmatch_delivery.deliveries import FINAL_STATES, Delivery, DeliveryLog, delivery_id
from contentmatch_delivery.hooks import Audience, Webhook, WebhookStore
from contentmatch_shared.events import (
    Envelope,
    MatchPublic,
    MediaFailed,
    ReportCreated,
    UploadMatched,
    WebhookDeliveryDue,
    utcnow,
)
from contentmatch_shared.ids import is_id
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore
from contentmatch_shared.topics import WEBHOOK_DELIVERIES
from contentmatch_shared.upload_tokens import UNAUTHENTIC_REFUSALS

_STORAGE_URL = re.compile(r"s3://\S+")


def event_id(tenant: str, cause: str) -> str:
    """The body's ``id``: one per (tenant, cause), the same on every attempt and replay."""
    return "evt_" + hashlib.sha256(f"{tenant}|{cause}".encode()).hexdigest()[:32]


def verdict_of(payload: UploadMatched) -> dict[str, Any]:
    matches = [
        MatchPublic.model_validate(m.model_dump(exclude={"work_object", "omitted"})).model_dump(
            mode="json"
        )
        for m in payload.matches
    ]
    return {
        "upload_id": payload.upload_id,
        "status": "matched" if matches else "no_match",
        "external_id": payload.metadata.external_id,
        "media_type": payload.media_type,
        "submitted_at": payload.submitted_at.isoformat(),
        "matched_at": payload.matched_at.isoformat(),
        "matches": matches,
    }


def failure_of(payload: MediaFailed) -> dict[str, Any]:
    message = _STORAGE_URL.sub("(storage location withheld)", payload.message)
    return {
        "upload_id": payload.subject_id,
        "status": "failed",
        "failed_at": payload.failed_at.isoformat(),
        "error": {"code": payload.code, "message": message},
    }


def report_of(payload: ReportCreated) -> dict[str, Any]:
    return {
        "report_id": payload.report_id,
        "kind": payload.kind,
        "upload_id": payload.upload_id,
        "work_ids": payload.work_ids,
        "created_at": payload.created_at.isoformat(),
        "report_path": f"/v1/reports/{payload.report_id}",
    }


class Notice:
    """One thing to tell one tenant's webhooks of one audience."""

    def __init__(
        self, tenant: str, audience: Audience, event_type: str, upload_id: str, cause: str,
        occurred_at: datetime, data: dict[str, Any],
    ) -> None:  # fmt: skip
        self.tenant, self.audience, self.event_type = tenant, audience, event_type
        self.upload_id, self.cause, self.occurred_at, self.data = (
            upload_id,
            cause,
            occurred_at,
            data,
        )


def notices_of(payload: object, occurred_at: datetime) -> list[Notice]:
    if isinstance(payload, UploadMatched):
        cause = f"verdict:{payload.upload_id}"
        return [
            Notice(payload.tenant, "platform", "upload.verdict", payload.upload_id, cause,
                   occurred_at, verdict_of(payload))
        ]  # fmt: skip
    if isinstance(payload, MediaFailed):
        if (
            payload.subject != "upload"
            or payload.code in UNAUTHENTIC_REFUSALS
            or not is_id(payload.subject_id, "upl")
        ):
            return []
        cause = f"verdict:{payload.subject_id}"
        return [
            Notice(payload.tenant, "platform", "upload.verdict", payload.subject_id, cause,
                   occurred_at, failure_of(payload))
        ]  # fmt: skip
    if isinstance(payload, ReportCreated):
        cause, data = f"report:{payload.report_id}", report_of(payload)
        out = [
            Notice(payload.platform_tenant, "platform", "report.created", payload.upload_id,
                   cause, occurred_at, data)
        ]  # fmt: skip
        for tenant in dict.fromkeys(payload.work_tenants):
            out.append(
                Notice(tenant, "rightsholder", "report.created", payload.upload_id, cause,
                       occurred_at, data)
            )  # fmt: skip
        return out
    return []


class DeliveryFanout:
    def __init__(
        self,
        hooks: WebhookStore,
        log: DeliveryLog,
        store: ObjectStore,
        producer: EventProducer,
        settings: Settings,
    ) -> None:
        self._hooks = hooks
        self._log = log
        self._store = store
        self._bucket = settings.bucket_state
        self._producer = producer

    async def __call__(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        for notice in notices_of(envelope.payload, envelope.occurred_at):
            if not is_id(notice.upload_id, "upl"):
                continue
            for hook in await self._hooks.subscribed(
                notice.tenant, notice.audience, notice.event_type
            ):
                await self._deliver(hook, notice)

    async def _deliver(self, hook: Webhook, notice: Notice) -> None:
        digest = hashlib.sha256(f"{hook.webhook_id}|{notice.cause}".encode()).hexdigest()
        marker = f"webhooks/{hook.tenant}/causes/{hook.webhook_id}/{digest}.json"
        known = await self._store.get_json(self._bucket, marker)
        delivery: Delivery | None = None
        if isinstance(known, dict):
            delivery = await self._log.get(hook.tenant, hook.webhook_id, str(known.get("id")))
        if delivery is None:
            now = utcnow()
            eid = event_id(hook.tenant, notice.cause)
            delivery = Delivery(
                delivery_id=delivery_id(now, f"{hook.webhook_id}|{notice.cause}"),
                webhook_id=hook.webhook_id,
                tenant=hook.tenant,
                upload_id=notice.upload_id,
                event_id=eid,
                event_type=notice.event_type,
                occurred_at=notice.occurred_at,
                created_at=now,
                body={
                    "id": eid,
                    "type": notice.event_type,
                    "created_at": notice.occurred_at.isoformat(),
                    "tenant": hook.tenant,
                    "data": notice.data,
                },
            )
            await self._log.put(delivery)
            await self._store.put_json(self._bucket, marker, {"id": delivery.delivery_id})
        elif delivery.state in FINAL_STATES or delivery.attempt_count > 0:
            return  # under way or done: the sender owns it from here
        command = WebhookDeliveryDue(
            delivery_id=delivery.delivery_id,
            webhook_id=hook.webhook_id,
            tenant=hook.tenant,
            upload_id=notice.upload_id,
            attempt=1,
            due_at=utcnow(),
        )
        await self._producer.publish(
            WEBHOOK_DELIVERIES, notice.upload_id, command, correlation_id=notice.upload_id
        )
