"""Webhooks end to end: a real HTTP receiver gets signed verdicts and reports, retried after 500s
and while it is down, in order per upload, never another tenant's; plus the batch status read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from contentmatch_delivery.signing import SIGNATURE_HEADER, verify
from contentmatch_shared.client import ApiFailure
from tests.e2e.conftest import Tenants
from tests.fixtures.images import make_image, to_bytes, transform_bytes
from tests.support.webhook_receiver import Received, WebhookReceiver

# Ports of this module's receivers (19650-19689 belong to its helper index).
RECEIVER_PORT = 19661
LATE_RECEIVER_PORT = 19662
WORK_SEED, STRANGER_SEED, VIDSHARE_SEED = 8601, 8602, 8603


def _ok(got: list[Received]) -> list[Received]:
    return [r for r in got if r.status == 200]


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver(RECEIVER_PORT).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def scenario(tenants: Tenants, receiver: WebhookReceiver) -> Iterator[dict[str, object]]:
    """tube and label register webhooks (tube's answers 500 twice first), vidshare one at a
    port where nothing listens yet; label registers a work; tube uploads a copy and a stranger."""
    started = datetime.now(UTC) - timedelta(seconds=1)
    receiver.script["/tube"] = [500, 500]
    tube_hook = tenants.tube.create_webhook(f"{receiver.url}/tube", description="verdicts")
    label_hook = tenants.label.create_webhook(f"{receiver.url}/label")
    vidshare_hook = tenants.other_platform.create_webhook(
        f"http://127.0.0.1:{LATE_RECEIVER_PORT}/vidshare"
    )
    work_id = tenants.label.register_work(
        to_bytes(make_image(WORK_SEED), "PNG"), "hook.png", {"title": "Hooked", "policy": "block"}
    )
    assert tenants.label.wait_work(work_id)["status"] == "indexed"
    copy, ext = transform_bytes(make_image(WORK_SEED), "jpeg_q20", seed=WORK_SEED)
    matched = tenants.tube.submit_upload(copy, f"copy.{ext}", {"external_id": "ext-copy"})
    stranger = tenants.tube.submit_upload(
        to_bytes(make_image(STRANGER_SEED), "JPEG", quality=85), "other.jpg"
    )
    theirs = tenants.other_platform.submit_upload(
        to_bytes(make_image(VIDSHARE_SEED), "JPEG", quality=85), "theirs.jpg"
    )
    for client, upload_id in (
        (tenants.tube, matched), (tenants.tube, stranger), (tenants.other_platform, theirs)
    ):  # fmt: skip
        client.wait_upload(upload_id)
    yield {
        "started": started,
        "tube_hook": tube_hook,
        "label_hook": label_hook,
        "vidshare_hook": vidshare_hook,
        "work_id": work_id,
        "matched": matched,
        "stranger": stranger,
        "theirs": theirs,
    }
    # Later modules' uploads must not queue retries for receivers that are gone.
    for client, hook in (
        (tenants.tube, tube_hook), (tenants.label, label_hook),
        (tenants.other_platform, vidshare_hook),
    ):  # fmt: skip
        client.delete_webhook(hook["webhook_id"])


def _by_upload(got: list[Received], upload_id: str) -> list[dict]:
    return [r.json() for r in got if r.json()["data"]["upload_id"] == upload_id]


def test_platform_gets_signed_verdicts_and_reports_after_500s(
    tenants: Tenants, receiver: WebhookReceiver, scenario: dict
) -> None:
    secret = scenario["tube_hook"]["secret"]
    got = receiver.wait_for("/tube", lambda g: len(_ok(g)) >= 3)
    delivered = _ok(got)
    assert len(delivered) == 3, [r.json()["type"] for r in got]
    for request in got:
        verify(request.headers.get(SIGNATURE_HEADER), request.body, secret)
    assert [r.status for r in got[:2]] == [500, 500]  # the first two were refused, then retried

    matched = _by_upload(delivered, scenario["matched"])
    assert [b["type"] for b in matched] == ["upload.verdict", "report.created"]  # in order
    verdict, report = matched
    assert verdict["tenant"] == "tube"
    assert verdict["data"]["status"] == "matched"
    assert verdict["data"]["external_id"] == "ext-copy"
    assert verdict["data"]["matches"][0]["work_id"] == scenario["work_id"]
    assert "work_object" not in verdict["data"]["matches"][0]
    assert report["data"]["report_id"] == tenants.tube.upload(scenario["matched"])["report_id"]

    (no_match,) = _by_upload(delivered, scenario["stranger"])
    assert no_match["type"] == "upload.verdict"
    assert no_match["data"]["status"] == "no_match" and no_match["data"]["matches"] == []

    hook_id = scenario["tube_hook"]["webhook_id"]
    log = tenants.tube.webhook_deliveries(hook_id)["deliveries"]
    assert len(log) == 3 and all(d["state"] == "delivered" for d in log)
    retried = [d for d in log if d["attempt_count"] > 1]
    assert retried, log
    detail = tenants.tube.webhook_delivery(hook_id, retried[0]["delivery_id"])
    assert [a["outcome"] for a in detail["attempts"]][-1] == "delivered"
    assert "http_error" in [a["outcome"] for a in detail["attempts"]]
    assert detail["attempts"][0]["status_code"] == 500


def test_rightsholder_gets_the_report_about_its_work(
    receiver: WebhookReceiver, scenario: dict
) -> None:
    got = receiver.wait_for("/label", lambda g: len(_ok(g)) >= 1)
    (only,) = [r.json() for r in got]
    assert only["type"] == "report.created" and only["tenant"] == "label"
    assert only["data"]["work_ids"] == [scenario["work_id"]]
    verify(got[0].headers.get(SIGNATURE_HEADER), got[0].body, scenario["label_hook"]["secret"])


def test_a_receiver_that_was_down_gets_its_delivery_and_nothing_of_others(
    tenants: Tenants, receiver: WebhookReceiver, scenario: dict
) -> None:
    hook_id = scenario["vidshare_hook"]["webhook_id"]
    deadline = time.monotonic() + 60
    while True:  # down: the attempts fail to connect and are retried
        log = tenants.other_platform.webhook_deliveries(hook_id)["deliveries"]
        if (log and log[0]["attempt_count"] >= 2) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert log[0]["state"] == "retrying", log
    assert log[0]["last_attempt"]["outcome"] == "connection_error"
    late = WebhookReceiver(LATE_RECEIVER_PORT).start()
    try:
        got = late.wait_for("/vidshare", lambda g: len(g) >= 1)
        time.sleep(1.0)  # anything else that would (wrongly) come
        bodies = [r.json() for r in late.requests]
    finally:
        late.stop()
    assert [b["data"]["upload_id"] for b in bodies] == [scenario["theirs"]], bodies
    verify(got[0].headers.get(SIGNATURE_HEADER), got[0].body, scenario["vidshare_hook"]["secret"])
    # Nothing of vidshare's reached the other tenants' URLs, and nothing of theirs reached it.
    for path in ("/tube", "/label"):
        assert scenario["theirs"] not in {r.json()["data"]["upload_id"] for r in receiver.at(path)}


def test_replay_after_a_secret_rotation_is_signed_with_both_secrets(
    tenants: Tenants, receiver: WebhookReceiver, scenario: dict
) -> None:
    hook_id = scenario["tube_hook"]["webhook_id"]
    receiver.wait_for("/tube", lambda g: len(_ok(g)) >= 3)
    old = scenario["tube_hook"]["secret"]
    rotated = tenants.tube.rotate_webhook_secret(hook_id, grace_seconds=600)
    assert rotated["secret"] != old and rotated["previous_secret_valid_until"]
    assert "secret" not in tenants.tube.webhooks()[0]  # shown once
    first = tenants.tube.webhook_deliveries(hook_id)["deliveries"][-1]
    before = len(receiver.at("/tube"))
    replay = tenants.tube.replay_webhook_delivery(hook_id, first["delivery_id"])
    assert replay["replay_of"] == first["delivery_id"]
    got = receiver.wait_for("/tube", lambda g: len(g) > before)
    again = got[before]
    assert again.json()["id"] == first["event_id"]  # same event: receivers can deduplicate
    verify(again.headers.get(SIGNATURE_HEADER), again.body, old)
    verify(again.headers.get(SIGNATURE_HEADER), again.body, rotated["secret"])


def test_webhooks_are_private_to_their_tenant(tenants: Tenants, scenario: dict) -> None:
    tube_hook = scenario["tube_hook"]["webhook_id"]
    assert [h["webhook_id"] for h in tenants.other_platform.webhooks()] == [
        scenario["vidshare_hook"]["webhook_id"]
    ]
    for call in (
        lambda: tenants.other_platform.webhook_deliveries(tube_hook),
        lambda: tenants.other_platform.rotate_webhook_secret(tube_hook),
        lambda: tenants.other_platform.delete_webhook(tube_hook),
    ):
        with pytest.raises(ApiFailure) as caught:
            call()
        assert caught.value.status == 404
    with pytest.raises(ApiFailure) as caught:
        tenants.operator.create_webhook("http://127.0.0.1:1/x")
    assert caught.value.status == 403
    with pytest.raises(ApiFailure) as caught:
        tenants.label.create_webhook("http://127.0.0.1:1/x", events=["upload.verdict"])
    assert caught.value.code == "unsupported_event"
    with pytest.raises(ApiFailure) as caught:
        tenants.tube.create_webhook("ftp://127.0.0.1/x")
    assert caught.value.code == "invalid_url"


def test_a_deleted_webhook_gets_nothing_more(tenants: Tenants, stack_delivery: str) -> None:
    hook = tenants.rival.create_webhook("http://127.0.0.1:1/rival")
    tenants.rival.delete_webhook(hook["webhook_id"])
    with pytest.raises(ApiFailure) as caught:
        tenants.rival.webhook_deliveries(hook["webhook_id"])
    assert caught.value.status == 404
    # Unauthenticated calls are refused like everywhere else.
    assert httpx.get(f"{stack_delivery}/v1/webhooks").status_code == 401


@pytest.fixture
def stack_delivery(endpoints: object) -> str:
    return str(endpoints.delivery)  # type: ignore[attr-defined]


def test_batch_status_by_ids_and_since(tenants: Tenants, scenario: dict) -> None:
    ids = [scenario["matched"], scenario["stranger"], scenario["theirs"], "upl_" + "0" * 32]
    batch = tenants.tube.uploads(ids=ids)
    assert [u["upload_id"] for u in batch["uploads"]] == ids[:2]
    assert [u["status"] for u in batch["uploads"]] == ["matched", "no_match"]
    assert batch["not_found"] == ids[2:]  # another tenant's upload is as unknown as a made-up id

    since = scenario["started"].isoformat()
    seen: dict[str, str] = {}
    page = tenants.tube.uploads(since=since, limit=2)
    while True:
        seen.update({u["upload_id"]: u["status"] for u in page["uploads"]})
        if page["next_cursor"] is None:
            break
        page = tenants.tube.uploads(cursor=page["next_cursor"], limit=2)
    assert seen[scenario["matched"]] == "matched" and seen[scenario["stranger"]] == "no_match"
    assert scenario["theirs"] not in seen
    newer = tenants.tube.uploads(cursor=page["resume_cursor"])
    assert newer["uploads"] == [] and newer["next_cursor"] is None
    vidshare = tenants.other_platform.uploads(since=since)
    assert [u["upload_id"] for u in vidshare["uploads"]] == [scenario["theirs"]]
    with pytest.raises(ApiFailure) as caught:
        tenants.tube.uploads()
    assert caught.value.status == 400
    with pytest.raises(ApiFailure) as caught:
        tenants.tube.uploads(cursor="nonsense")
    assert caught.value.code == "invalid_cursor"
