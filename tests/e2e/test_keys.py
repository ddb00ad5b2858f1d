"""Keys through HTTP: who may mint which, list, revoke, expire, rotate; the audit log and the
access log; key records written before key lifecycles still work."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from contentmatch_shared.client import ApiFailure, ContentMatchClient, Endpoints
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore
from tests.e2e.conftest import Tenants
from tests.e2e.report_parties import make_parties, register_image, upload_copy
from tests.support.stack import Stack

_CACHE_TTL_S = Settings().auth_cache_ttl_s


@pytest.fixture(scope="module")
def started() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=1)


@pytest.fixture(scope="module")
def minted_operator(tenants: Tenants, endpoints: Endpoints) -> Iterator[ContentMatchClient]:
    made = tenants.operator.create_key_full("operator", "ops-team", name="second operator")
    client = ContentMatchClient(made["key"], endpoints)
    yield client
    client.close()


def _status(client: ContentMatchClient, url: str) -> tuple[int, str | None]:
    response = client._http.get(url)
    code = response.json().get("error", {}).get("code") if response.status_code >= 400 else None
    return response.status_code, code


def test_only_the_bootstrap_admin_mints_operator_keys(
    tenants: Tenants, minted_operator: ContentMatchClient
) -> None:
    # The admin did mint one; that operator mints other roles but no operator.
    assert minted_operator.create_key("platform", "ops-made")
    with pytest.raises(ApiFailure) as err:
        minted_operator.create_key("operator", "ops-team")
    assert (err.value.status, err.value.code) == (403, "forbidden")
    with pytest.raises(ApiFailure) as err:
        tenants.label.create_key("platform", "x")
    assert err.value.status == 403


def test_operators_list_keys_without_secrets(
    tenants: Tenants, minted_operator: ContentMatchClient
) -> None:
    made = tenants.operator.create_key_full("platform", "listed", name="for listing")
    seen: dict[str, dict] = {}
    cursor = None
    while True:
        page = minted_operator.list_keys(tenant="listed", cursor=cursor, limit=200) if cursor else (
            minted_operator.list_keys(tenant="listed", limit=200)
        )  # fmt: skip
        seen.update({k["key_id"]: k for k in page["keys"]})
        if not (cursor := page["next_cursor"]):
            break
    listed = seen[made["key_id"]]
    assert listed["role"] == "platform" and listed["name"] == "for listing"
    assert listed["status"] == "active" and listed["created_by"] == "admin"
    assert made["key"] not in str(seen) and "key" not in listed
    with pytest.raises(ApiFailure) as err:
        tenants.tube.list_keys()
    assert err.value.status == 403


def test_a_revoked_key_is_refused(stack: Stack, tenants: Tenants, endpoints: Endpoints) -> None:
    made = tenants.operator.create_key_full("platform", "revoked-co")
    victim = ContentMatchClient(made["key"], endpoints)
    reports = f"{stack.url('report')}/v1/reports"
    assert _status(victim, reports)[0] == 200  # now cached on the report service too
    revoked = tenants.operator.revoke_key(made["key_id"])
    assert revoked["status"] == "revoked" and revoked["revoked_by"] == "admin"
    # On the process that revoked it: at once.
    assert _status(victim, f"{stack.url('ingest')}/v1/uploads/upl_x") == (401, "key_revoked")
    # Elsewhere: within the positive cache's TTL.
    deadline = time.monotonic() + _CACHE_TTL_S + 5
    while _status(victim, reports) != (401, "key_revoked"):
        assert time.monotonic() < deadline, "the report service still accepts a revoked key"
        time.sleep(0.5)
    victim.close()


def test_an_expired_key_is_refused(stack: Stack, tenants: Tenants, endpoints: Endpoints) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=3)
    made = tenants.operator.create_key_full("platform", "brief-co", expires_at=expires.isoformat())
    client = ContentMatchClient(made["key"], endpoints)
    url = f"{stack.url('ingest')}/v1/uploads/upl_x"
    assert _status(client, url) == (404, "not_found")
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.5)
    assert _status(client, url) == (401, "key_expired")
    with pytest.raises(ApiFailure) as err:
        tenants.operator.create_key_full("platform", "x", expires_at="2001-01-01T00:00:00Z")
    assert (err.value.status, err.value.code) == (422, "invalid_expiry")
    client.close()


def test_rotation_gives_a_new_secret_and_retires_the_old(
    stack: Stack, tenants: Tenants, endpoints: Endpoints
) -> None:
    url = f"{stack.url('ingest')}/v1/uploads/upl_x"
    made = tenants.operator.create_key_full("platform", "rotating-co", name="ci")
    old = ContentMatchClient(made["key"], endpoints)
    # A key may rotate itself; the old secret keeps working for the grace period.
    rotated = old.rotate_key(made["key_id"])
    assert rotated["replaces"] == made["key_id"] and rotated["key_id"] != made["key_id"]
    assert rotated["tenant"] == "rotating-co" and rotated["name"] == "ci"
    new = ContentMatchClient(rotated["key"], endpoints)
    assert _status(new, url)[0] == 404 and _status(old, url)[0] == 404
    # An operator's rotation with no grace: the old secret stops at once.
    again = tenants.operator.rotate_key(rotated["key_id"], grace_seconds=0)
    assert _status(new, url) == (401, "key_revoked")
    newest = ContentMatchClient(again["key"], endpoints)
    assert _status(newest, url)[0] == 404
    # A key cannot touch another key.
    with pytest.raises(ApiFailure) as err:
        newest.rotate_key(made["key_id"])
    assert err.value.status == 404
    for client in (old, new, newest):
        client.close()


def test_keys_stored_before_lifecycles_still_work(
    stack: Stack, settings: Settings, tenants: Tenants, endpoints: Endpoints
) -> None:
    secret = f"cm_plat_{secrets.token_urlsafe(24)}"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    legacy = {"key_id": digest[:16], "role": "platform", "tenant": "legacy-co",
              "created_at": "2025-01-01T00:00:00+00:00"}  # fmt: skip

    async def write() -> None:
        store = ObjectStore(settings)
        await store.put_json(settings.bucket_state, f"keys/{digest}.json", legacy)

    asyncio.run(write())
    client = ContentMatchClient(secret, endpoints)
    assert _status(client, f"{stack.url('ingest')}/v1/uploads/upl_x") == (404, "not_found")
    assert client._call("GET", f"{stack.url('ingest')}/v1/keys/current")["tenant"] == "legacy-co"
    assert tenants.operator.revoke_key(digest[:16])["status"] == "revoked"
    assert _status(client, f"{stack.url('ingest')}/v1/uploads/upl_x") == (401, "key_revoked")
    client.close()


def test_the_audit_log_tells_who_did_what(
    stack: Stack, tenants: Tenants, endpoints: Endpoints, started: datetime
) -> None:
    parties = make_parties(tenants.operator, endpoints, "audit")
    seed = 7501  # a picture of its own: other modules share the session stack
    register_image(parties.label, seed, {"title": "Audited photo", "policy": "block"})
    report_id = upload_copy(parties.tube, seed, "jpeg_q75")["report_id"]
    parties.label_enforcement.report(str(report_id))
    parties.label_enforcement.report(str(report_id))  # read twice: one event per key and day
    made = tenants.operator.create_key_full("platform", "audited-co")
    rotated = tenants.operator.rotate_key(made["key_id"])
    tenants.operator.revoke_key(made["key_id"])

    events = tenants.operator.audit(since=started.isoformat(), limit=1000)
    by_event: dict[str, list[dict]] = {}
    for event in events:
        by_event.setdefault(event["event"], []).append(event)
    created = [e for e in by_event["key_created"] if e["subject"]["key_id"] == made["key_id"]]
    assert len(created) == 1 and created[0]["actor"]["key_id"] == "admin"
    assert any(e["subject"]["key_id"] == made["key_id"] for e in by_event["key_revoked"])
    assert any(e["subject"]["new_key_id"] == rotated["key_id"] for e in by_event["key_rotated"])
    reads = [e for e in by_event["report_read"] if e["subject"]["report_id"] == report_id]
    assert len(reads) == 1
    assert reads[0]["actor"]["tenant"] == parties.names["label_enforcement"]
    assert any(e["actor"]["tenant"] == parties.names["tube"] for e in by_event["key_used"])
    with pytest.raises(ApiFailure) as err:
        parties.tube.audit()
    assert err.value.status == 403
    parties.close()


def test_the_access_log_names_the_key_never_the_secret(stack: Stack, tenants: Tenants) -> None:
    made = tenants.operator.create_key_full("platform", "logged-co")
    response = httpx.get(
        f"{stack.url('ingest')}/v1/uploads/upl_{'0' * 32}",
        headers={"Authorization": f"Bearer {made['key']}"},
    )
    assert response.status_code == 404, response.text
    line = "GET /v1/uploads/{upload_id} 404"

    def logged() -> str | None:
        log = stack.log_path("ingest").read_text(errors="replace")
        rows = log.splitlines()
        return log if any(line in r and f"key={made['key_id']}" in r for r in rows) else None

    # The line is written once the response has gone out: give it a moment.
    deadline = time.monotonic() + 10
    while (log := logged()) is None:
        assert time.monotonic() < deadline, line
        time.sleep(0.2)
    assert made["key"] not in log and stack.admin_key not in log
