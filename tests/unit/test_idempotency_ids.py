"""Ids derived from an Idempotency-Key: concurrent or interrupted first requests with one key
land on one work, per tenant and route; requests without a key get fresh ids."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from pydantic import BaseModel

from contentmatch_ingest.submissions import IdempotencyGuard

pytestmark = pytest.mark.unit


class Meta(BaseModel):
    title: str


def _guard(key: str | None, tenant: str = "acme", route: str = "works", title: str = "A"):
    request = SimpleNamespace(headers={"idempotency-key": key} if key else {})
    form = SimpleNamespace(file=SimpleNamespace(filename="a.png"))
    return IdempotencyGuard.for_request(request, None, route, tenant, form, Meta(title=title))


def test_one_key_gives_one_id_per_tenant_and_route():
    a, b = _guard("retry-1").new_id("wrk"), _guard("retry-1").new_id("wrk")
    assert a == b and re.fullmatch(r"wrk_[0-9a-f]{32}", a)
    assert _guard("retry-1", tenant="other").new_id("wrk") != a
    assert _guard("retry-1", route="uploads").new_id("wrk") != a
    assert _guard("retry-2").new_id("wrk") != a


def test_without_a_key_every_request_is_new():
    assert _guard(None).new_id("upl") != _guard(None).new_id("upl")
    assert _guard(None).media_key("works/wrk_1") == "works/wrk_1"


def test_a_key_misused_for_two_requests_keeps_their_bytes_apart():
    """Same key, different request: one id (the second is refused with 409 once the first is
    remembered), but if both are in flight together each record points at its own file."""
    first, second = _guard("k", title="A"), _guard("k", title="B")
    assert first.new_id("wrk") == second.new_id("wrk")
    assert first.media_key("works/x") != second.media_key("works/x")
    assert first.media_key("works/x") == _guard("k", title="A").media_key("works/x")
