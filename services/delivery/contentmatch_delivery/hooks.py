"""Registered webhooks, one object per webhook under its tenant's prefix in the state bucket:
``webhooks/<tenant>/hooks/<webhook_id>.json``. A webhook belongs to one tenant and one audience
(``platform``: verdicts and reports about the tenant's uploads; ``rightsholder``: reports about the
tenant's works); nothing outside that tenant's prefix is ever read for it.

The signing secret is stored (an HMAC needs it) and shown once, when created or rotated.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from contentmatch_delivery.signing import new_secret
from contentmatch_shared.bounded_cache import TtlLru
from contentmatch_shared.events import utcnow
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore

Audience = Literal["platform", "rightsholder"]
EventType = Literal["upload.verdict", "report.created"]
EVENTS_OF: dict[str, tuple[str, ...]] = {
    "platform": ("upload.verdict", "report.created"),
    "rightsholder": ("report.created",),
}
WEBHOOK_ID = re.compile(r"^whk_[0-9a-f]{32}$")


class Webhook(BaseModel):
    webhook_id: str
    tenant: str
    audience: Audience
    url: str
    events: list[EventType]
    description: str | None = None
    secret: str
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None
    created_at: datetime
    created_by: str
    secret_rotated_at: datetime | None = None

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign a delivery now: the current one, and the previous one during a
        rotation's grace period."""
        out = [self.secret]
        if self.previous_secret and self.previous_secret_until and now < self.previous_secret_until:
            out.append(self.previous_secret)
        return out

    def public(self) -> dict[str, object]:
        """What the API shows: never a secret."""
        body = self.model_dump(mode="json", exclude={"secret", "previous_secret"})
        return {k: v for k, v in body.items() if v is not None}


def hook_key(tenant: str, webhook_id: str) -> str:
    return f"webhooks/{tenant}/hooks/{webhook_id}.json"


class WebhookStore:
    def __init__(self, store: ObjectStore, settings: Settings) -> None:
        self._store = store
        self._bucket = settings.bucket_state
        self._settings = settings
        # tenant -> its webhooks, briefly: the fan-out looks them up for every pipeline event.
        self._by_tenant: TtlLru[list[Webhook]] = TtlLru(10_000, settings.webhook_cache_ttl_s)

    async def create(
        self, tenant: str, audience: Audience, url: str, events: list[EventType],
        description: str | None, created_by: str,
    ) -> Webhook:  # fmt: skip
        hook = Webhook(
            webhook_id=f"whk_{uuid.uuid4().hex}",
            tenant=tenant,
            audience=audience,
            url=url,
            events=events,
            description=description,
            secret=new_secret(),
            created_at=utcnow(),
            created_by=created_by,
        )
        await self._put(hook)
        return hook

    async def get(self, tenant: str, webhook_id: str) -> Webhook | None:
        if not WEBHOOK_ID.match(webhook_id):
            return None
        raw = await self._store.get_json(self._bucket, hook_key(tenant, webhook_id))
        return None if raw is None else Webhook.model_validate(raw)

    async def list(self, tenant: str) -> list[Webhook]:
        prefix = f"webhooks/{tenant}/hooks/"
        names = [
            n
            for n in await self._store.list_keys(self._bucket, prefix, limit=1000)
            if WEBHOOK_ID.match(n.removeprefix(prefix).removesuffix(".json"))
            and n.endswith(".json")
        ]
        raws = await asyncio.gather(*(self._store.get_json(self._bucket, n) for n in names))
        hooks = [Webhook.model_validate(r) for r in raws if r]
        return sorted(hooks, key=lambda h: h.created_at)

    async def subscribed(self, tenant: str, audience: Audience, event: str) -> list[Webhook]:
        """The tenant's webhooks of ``audience`` that take ``event`` (cached for a moment)."""
        hooks = self._by_tenant.get(tenant)
        if hooks is None:
            hooks = await self.list(tenant)
            self._by_tenant.put(tenant, hooks)
        return [h for h in hooks if h.audience == audience and event in h.events]

    async def delete(self, tenant: str, webhook_id: str) -> bool:
        if await self.get(tenant, webhook_id) is None:
            return False
        await self._store.delete(self._bucket, hook_key(tenant, webhook_id))
        self._by_tenant.discard(tenant)
        return True

    async def rotate_secret(self, hook: Webhook, grace_s: float) -> Webhook:
        now = utcnow()
        hook.previous_secret = hook.secret if grace_s > 0 else None
        hook.previous_secret_until = now + timedelta(seconds=grace_s) if grace_s > 0 else None
        hook.secret = new_secret()
        hook.secret_rotated_at = now
        await self._put(hook)
        return hook

    async def _put(self, hook: Webhook) -> None:
        await self._store.put_json(
            self._bucket, hook_key(hook.tenant, hook.webhook_id), hook.model_dump(mode="json")
        )
        self._by_tenant.discard(hook.tenant)
