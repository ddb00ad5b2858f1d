"""``/v1/webhooks``: a platform or rightsholder registers callback URLs, reads its delivery log,
and replays deliveries. A key sees its own tenant's webhooks only (anything else is a 404)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from contentmatch_delivery import targets
from contentmatch_delivery.deliveries import DELIVERY_ID, Delivery, DeliveryLog, delivery_id
from contentmatch_delivery.hooks import EVENTS_OF, Audience, EventType, Webhook, WebhookStore
from contentmatch_shared.auth import ApiKey, CurrentKey
from contentmatch_shared.events import WebhookDeliveryDue, utcnow
from contentmatch_shared.http import ApiError
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import WEBHOOK_DELIVERIES

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class WebhookCreate(BaseModel):
    url: str = Field(min_length=1, max_length=targets.MAX_URL_CHARS)
    # Default: every event of the key's audience.
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=4)
    description: str | None = Field(default=None, max_length=500)


class SecretRotation(BaseModel):
    grace_seconds: float | None = Field(default=None, ge=0, le=7 * 24 * 3600)


def _audience(api_key: ApiKey) -> Audience:
    if api_key.role == "platform":
        return "platform"
    if api_key.role in ("rightsholder", "enforcement"):
        return "rightsholder"
    raise ApiError(403, "forbidden", "webhooks belong to platforms and rightsholders")


async def _own_hook(request: Request, api_key: ApiKey, webhook_id: str) -> Webhook:
    _audience(api_key)
    hooks: WebhookStore = request.app.state.hooks
    hook = await hooks.get(api_key.tenant, webhook_id)
    if hook is None:
        raise ApiError(404, "not_found", f"no webhook {webhook_id[:100]!r}")
    return hook


@router.post("", status_code=201, operation_id="create_webhook")
async def create_webhook(body: WebhookCreate, request: Request, api_key: CurrentKey) -> Any:
    """Register a callback URL. The answer holds the signing ``secret``: it is shown only here
    (and on a rotation)."""
    audience = _audience(api_key)
    settings: Settings = request.app.state.settings
    allowed = EVENTS_OF[audience]
    events = list(dict.fromkeys(body.events or allowed))
    if unknown := [e for e in events if e not in allowed]:
        raise ApiError(
            400, "unsupported_event",
            f"a {api_key.role} key can subscribe to {', '.join(allowed)}, not {unknown[0]}",
        )  # fmt: skip
    try:
        await targets.check(
            body.url,
            allow_private=settings.webhook_allow_private_urls,
            require_https=settings.environment == "production",
        )
    except targets.TargetRefused as exc:
        raise ApiError(400, exc.code, exc.message) from None
    hooks: WebhookStore = request.app.state.hooks
    if len(await hooks.list(api_key.tenant)) >= settings.webhook_max_per_tenant:
        raise ApiError(
            409, "too_many_webhooks",
            f"a tenant may register {settings.webhook_max_per_tenant} webhooks; delete one first",
        )  # fmt: skip
    hook = await hooks.create(
        api_key.tenant,
        audience,
        body.url,
        events,
        body.description,
        api_key.key_id,  # type: ignore[arg-type]
    )
    return {**hook.public(), "secret": hook.secret}


@router.get("", operation_id="list_webhooks")
async def list_webhooks(request: Request, api_key: CurrentKey) -> dict[str, Any]:
    _audience(api_key)
    hooks: WebhookStore = request.app.state.hooks
    return {"webhooks": [h.public() for h in await hooks.list(api_key.tenant)]}


@router.get("/{webhook_id}", operation_id="get_webhook")
async def get_webhook(webhook_id: str, request: Request, api_key: CurrentKey) -> dict[str, Any]:
    return (await _own_hook(request, api_key, webhook_id)).public()


@router.delete("/{webhook_id}", status_code=204, operation_id="delete_webhook")
async def delete_webhook(webhook_id: str, request: Request, api_key: CurrentKey) -> Response:
    """Deliveries still waiting for it are cancelled; its delivery log stays readable."""
    hook = await _own_hook(request, api_key, webhook_id)
    hooks: WebhookStore = request.app.state.hooks
    await hooks.delete(hook.tenant, hook.webhook_id)
    return Response(status_code=204)


@router.post("/{webhook_id}/rotate-secret", operation_id="rotate_webhook_secret")
async def rotate_secret(
    webhook_id: str, request: Request, api_key: CurrentKey, body: SecretRotation | None = None
) -> dict[str, Any]:
    """A new signing secret, shown once. The old one keeps signing (a second ``v1``) for
    ``grace_seconds`` (default ``CM_WEBHOOK_SECRET_GRACE_S``; 0 ends it at once)."""
    hook = await _own_hook(request, api_key, webhook_id)
    settings: Settings = request.app.state.settings
    grace = body.grace_seconds if body and body.grace_seconds is not None else None
    hooks: WebhookStore = request.app.state.hooks
    hook = await hooks.rotate_secret(
        hook, settings.webhook_secret_grace_s if grace is None else grace
    )
    return {
        **hook.public(),
        "secret": hook.secret,
        "previous_secret_valid_until": hook.previous_secret_until.isoformat()
        if hook.previous_secret_until
        else None,
    }


@router.get("/{webhook_id}/deliveries", operation_id="list_webhook_deliveries")
async def list_deliveries(
    webhook_id: str,
    request: Request,
    api_key: CurrentKey,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The webhook's delivery log, newest first. Follow ``next_cursor`` until it is null."""
    hook = await _own_hook(request, api_key, webhook_id)
    if cursor is not None and not DELIVERY_ID.match(cursor):
        raise ApiError(400, "invalid_cursor", "the cursor is not one this listing returned")
    log: DeliveryLog = request.app.state.deliveries
    page, next_cursor = await log.page(hook.tenant, hook.webhook_id, cursor=cursor, limit=limit)
    return {"deliveries": [d.summary() for d in page], "next_cursor": next_cursor}


async def _own_delivery(
    request: Request, api_key: ApiKey, webhook_id: str, delivery: str
) -> tuple[Webhook, Delivery]:
    hook = await _own_hook(request, api_key, webhook_id)
    log: DeliveryLog = request.app.state.deliveries
    found = await log.get(hook.tenant, hook.webhook_id, delivery)
    if found is None:
        raise ApiError(404, "not_found", f"no delivery {delivery[:100]!r} for this webhook")
    return hook, found


@router.get("/{webhook_id}/deliveries/{delivery_id}", operation_id="get_webhook_delivery")
async def get_delivery(
    webhook_id: str, delivery_id: str, request: Request, api_key: CurrentKey
) -> dict[str, Any]:
    """One delivery: its summary, every attempt, and the body that is sent."""
    _, found = await _own_delivery(request, api_key, webhook_id, delivery_id)
    attempts = [a.model_dump(mode="json", exclude_none=True) for a in found.attempts]
    return {**found.summary(), "attempts": attempts, "body": found.body}


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    operation_id="replay_webhook_delivery",
)
async def replay_delivery(
    webhook_id: str, delivery_id: str, request: Request, api_key: CurrentKey
) -> dict[str, Any]:
    """Send a delivery's body again, as a new delivery with the same event ``id`` (receivers
    that deduplicate on it see the same event): queued behind the upload's unfinished ones."""
    hook, original = await _own_delivery(request, api_key, webhook_id, delivery_id)
    now = utcnow()
    replay = Delivery(
        delivery_id=_replay_id(now, original),
        webhook_id=hook.webhook_id,
        tenant=hook.tenant,
        upload_id=original.upload_id,
        event_id=original.event_id,
        event_type=original.event_type,
        occurred_at=now - timedelta(0),
        created_at=now,
        body=original.body,
        replay_of=original.delivery_id,
    )
    log: DeliveryLog = request.app.state.deliveries
    await log.put(replay)
    producer: EventProducer = request.app.state.producer
    command = WebhookDeliveryDue(
        delivery_id=replay.delivery_id,
        webhook_id=hook.webhook_id,
        tenant=hook.tenant,
        upload_id=replay.upload_id,
        attempt=1,
        due_at=now,
    )
    await producer.publish(
        WEBHOOK_DELIVERIES, replay.upload_id, command, correlation_id=replay.upload_id
    )
    return replay.summary()


def _replay_id(now: Any, original: Delivery) -> str:
    return delivery_id(now, f"replay|{original.delivery_id}|{now.isoformat()}")
