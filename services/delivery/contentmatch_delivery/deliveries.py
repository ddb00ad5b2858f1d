"""The delivery log and the per-upload queues, in the state bucket under the tenant's prefix.

- ``webhooks/<tenant>/deliveries/<webhook_id>/<inverted ms>-<hex>.json``: one record per delivery
  (what is sent, every attempt and its outcome), newest first in a listing. A delivery's id
  carries its time and a digest of what caused it, so the same pipeline event read twice makes
  the same delivery, never a second one.
- ``webhooks/<tenant>/queues/<webhook_id>/<upload_id>.json``: the deliveries of one upload to one
  webhook that are not finished, oldest first. Only the head is attempted, so a later delivery
  (a report) never overtakes an earlier one (the verdict) that is still being retried. Only the
  sender writes queues, and it handles all of one upload's commands in one partition, in order.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore

DeliveryState = Literal["pending", "queued", "retrying", "delivered", "failed", "cancelled"]
FINAL_STATES = ("delivered", "failed", "cancelled")
DELIVERY_ID = re.compile(r"^dlv_([0-9]{13})([0-9a-f]{16})$")
_MAX_MS = 9_999_999_999_999
_KEPT_ATTEMPTS = 50  # a record stays small whatever the retry window


class Attempt(BaseModel):
    attempt: int
    at: datetime
    outcome: str  # delivered, http_error, timeout, connection_error, refused, deferred
    status_code: int | None = None
    error: str | None = None
    duration_ms: float | None = None
    response_excerpt: str | None = None


class Delivery(BaseModel):
    delivery_id: str
    webhook_id: str
    tenant: str
    upload_id: str
    event_id: str  # the body's "id": the same for every attempt and replay
    event_type: str
    occurred_at: datetime  # when the pipeline event happened
    created_at: datetime
    state: DeliveryState = "pending"
    body: dict[str, Any]
    attempts: list[Attempt] = Field(default_factory=list)
    attempt_count: int = 0
    first_attempt_at: datetime | None = None  # the retry window runs from here
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    replay_of: str | None = None

    def summary(self) -> dict[str, Any]:
        last = self.attempts[-1] if self.attempts else None
        return {
            "delivery_id": self.delivery_id,
            "webhook_id": self.webhook_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "upload_id": self.upload_id,
            "state": self.state,
            "created_at": self.created_at.isoformat(),
            "attempt_count": self.attempt_count,
            "last_attempt": last.model_dump(mode="json", exclude_none=True) if last else None,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "replay_of": self.replay_of,
        }

    def note(self, attempt: Attempt) -> None:
        self.attempt_count = attempt.attempt
        self.attempts = [*self.attempts, attempt][-_KEPT_ATTEMPTS:]


def delivery_id(at: datetime, cause: str) -> str:
    ms = min(max(int(at.timestamp() * 1000), 0), _MAX_MS)
    return f"dlv_{ms:013d}{hashlib.sha256(cause.encode()).hexdigest()[:16]}"


def _record_name(delivery: str) -> str:
    m = DELIVERY_ID.match(delivery)
    if m is None:
        raise ValueError(f"not a delivery id: {delivery!r:.80}")
    return f"{_MAX_MS - int(m[1]):013d}-{m[2]}"


class DeliveryLog:
    def __init__(self, store: ObjectStore, settings: Settings) -> None:
        self._store = store
        self._bucket = settings.bucket_state

    @staticmethod
    def _prefix(tenant: str, webhook_id: str) -> str:
        return f"webhooks/{tenant}/deliveries/{webhook_id}/"

    def _key(self, tenant: str, webhook_id: str, delivery: str) -> str:
        return f"{self._prefix(tenant, webhook_id)}{_record_name(delivery)}.json"

    async def get(self, tenant: str, webhook_id: str, delivery: str) -> Delivery | None:
        if not DELIVERY_ID.match(delivery):
            return None
        raw = await self._store.get_json(self._bucket, self._key(tenant, webhook_id, delivery))
        return None if raw is None else Delivery.model_validate(raw)

    async def put(self, delivery: Delivery) -> None:
        key = self._key(delivery.tenant, delivery.webhook_id, delivery.delivery_id)
        await self._store.put_json(self._bucket, key, delivery.model_dump(mode="json"))

    async def page(
        self, tenant: str, webhook_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Delivery], str | None]:
        """Newest first; ``cursor`` is the last delivery id of the previous page."""
        prefix = self._prefix(tenant, webhook_id)
        after = f"{prefix}{_record_name(cursor)}.json" if cursor else None
        names = await self._store.list_keys(self._bucket, prefix, start_after=after, limit=limit)
        out: list[Delivery] = []
        for name in names:
            if not name.endswith(".json"):
                continue  # an upload cut short by a crash
            raw = await self._store.get_json(self._bucket, name)
            if raw is not None:
                out.append(Delivery.model_validate(raw))
        next_cursor = out[-1].delivery_id if len(names) == limit and out else None
        return out, next_cursor

    # -- per-upload queues (written by the sender only) ---------------------------------------
    @staticmethod
    def _queue_key(tenant: str, webhook_id: str, upload_id: str) -> str:
        return f"webhooks/{tenant}/queues/{webhook_id}/{upload_id}.json"

    async def queue(self, tenant: str, webhook_id: str, upload_id: str) -> list[str]:
        raw = await self._store.get_json(
            self._bucket, self._queue_key(tenant, webhook_id, upload_id)
        )
        return list(raw.get("pending", [])) if isinstance(raw, dict) else []

    async def set_queue(
        self, tenant: str, webhook_id: str, upload_id: str, pending: list[str]
    ) -> None:
        key = self._queue_key(tenant, webhook_id, upload_id)
        if pending:
            await self._store.put_json(self._bucket, key, {"pending": pending})
        else:
            await self._store.delete(self._bucket, key)
