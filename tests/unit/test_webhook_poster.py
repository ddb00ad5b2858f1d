"""One delivery attempt against a real local HTTP server: the checked address is the one
connected to, the URL's host is sent as Host, a redirect is not followed, refusals never connect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contentmatch_delivery.poster import WebhookPoster
from contentmatch_shared.settings import Settings
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver(0).start()
    yield running
    running.stop()


async def test_a_name_is_resolved_once_and_sent_as_host(receiver: WebhookReceiver) -> None:
    poster = WebhookPoster(Settings(webhook_allow_private_urls=True))
    try:
        result = await poster.post(
            f"http://localhost:{receiver.port}/hook?x=1", b"{}", {"X-Test": "1"}
        )
    finally:
        await poster.close()
    assert result.delivered and result.status_code == 200 and result.response_excerpt == "ok"
    (got,) = receiver.at("/hook?x=1")
    assert got.headers["Host"] == f"localhost:{receiver.port}"
    assert got.headers["X-Test"] == "1"
    assert got.headers["User-Agent"].startswith("contentmatch-webhooks/")


async def test_redirects_are_failures_and_not_followed(receiver: WebhookReceiver) -> None:
    receiver.script["/moved"] = [302]
    poster = WebhookPoster(Settings(webhook_allow_private_urls=True))
    try:
        result = await poster.post(f"{receiver.url}/moved", b"{}", {})
    finally:
        await poster.close()
    assert result.outcome == "http_error" and result.status_code == 302
    assert result.error == "redirects are not followed"
    assert len(receiver.requests) == 1


async def test_a_private_target_is_refused_without_a_request(receiver: WebhookReceiver) -> None:
    poster = WebhookPoster(Settings())  # production's rule: no private addresses
    try:
        result = await poster.post(f"{receiver.url}/hook", b"{}", {})
    finally:
        await poster.close()
    assert result.outcome == "refused" and "forbidden_address" in (result.error or "")
    assert receiver.requests == []


async def test_a_closed_port_is_a_connection_error() -> None:
    closed = WebhookReceiver(0).start()
    port = closed.port
    closed.stop()
    poster = WebhookPoster(Settings(webhook_allow_private_urls=True))
    try:
        result = await poster.post(f"http://127.0.0.1:{port}/hook", b"{}", {})
    finally:
        await poster.close()
    assert result.outcome == "connection_error"


async def test_the_next_checked_address_is_tried_when_one_refuses(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ipaddress

    from contentmatch_delivery import targets

    async def two_addresses(host: str, port: int) -> tuple[targets.IPAddress, ...]:
        assert host == "receiver.test"
        # Nothing listens on 127.0.0.2; the receiver is on 127.0.0.1.
        return (ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.1"))

    monkeypatch.setattr(targets, "resolve", two_addresses)
    poster = WebhookPoster(Settings(webhook_allow_private_urls=True))
    try:
        result = await poster.post(f"http://receiver.test:{receiver.port}/hook", b"{}", {})
    finally:
        await poster.close()
    assert result.delivered, result
    (got,) = receiver.at("/hook")
    assert got.headers["Host"] == f"receiver.test:{receiver.port}"
