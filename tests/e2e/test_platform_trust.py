"""The platform trust boundary, end to end: a platform uploads through a presigned URL and
publishes as its own Kafka principal; the services believe only what the upload token proves.

One test per boundary: another tenant's object, another platform's name, the state bucket, a
malformed id, a tampered or expired token (each refused with its code on ``media.failed`` and
dead-lettered), and malformed ids in URLs (404, never 500). Platform principals refused other
topics: tests/integration/test_kafka_acls.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from contentmatch_shared.direct_upload import publish_file_async, upload_event
from contentmatch_shared.events import (
    UploadSubmitted,
    decode_event,
    encode_event,
    make_envelope,
)
from contentmatch_shared.kafka.connection import new_consumer, new_producer
from contentmatch_shared.kafka.security import add_platform, platform_principal
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import MEDIA_FAILED, UPLOADS_SUBMITTED
from contentmatch_shared.upload_tokens import new_grant, sign_grant
from tests.e2e.conftest import Tenants
from tests.fixtures.images import make_image, to_bytes, transform_bytes
from tests.support.stack import Stack

META = {"title": "Trust photo", "kind": "work", "policy": "monetize"}


@pytest.fixture(scope="module")
def tube_kafka(settings: Settings) -> Settings:
    """The platform tube's own Kafka principal: it may only write uploads.submitted."""
    password = asyncio.run(add_platform(settings, "tube"))
    return settings.model_copy(
        update={
            "kafka_username": platform_principal("tube"),
            "kafka_password": password,
            "kafka_password_file": "",
        }
    )


@pytest.fixture(scope="module")
def work(tenants: Tenants) -> tuple[int, str]:
    seed = 611
    work_id = tenants.label.register_work(to_bytes(make_image(seed), "PNG"), "t.png", META)
    assert tenants.label.wait_work(work_id)["status"] == "indexed"
    return seed, work_id


def _grant(client: Any) -> dict[str, Any]:
    response = client._http.post(f"{client.endpoints.ingest}/v1/uploads/direct")
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _publish(platform: Settings, *events: UploadSubmitted) -> None:
    producer = new_producer(platform)
    await producer.start()
    try:
        for event in events:
            envelope = make_envelope(event, producer="platform", correlation_id="trust-test")
            await producer.send_and_wait(
                platform.topic(UPLOADS_SUBMITTED.name),
                encode_event(envelope),
                key=event.upload_id.encode(),
            )
    finally:
        await producer.stop()


async def _records(settings: Settings, topic: str, wanted: set[str]) -> dict[str, Any]:
    """Records of ``topic`` (read as the operator) keyed by their key, until all are seen."""
    consumer = new_consumer(settings, topic, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    seen: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 120
        while not wanted <= seen.keys() and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    if r.key is not None and r.key.decode() in wanted:
                        seen[r.key.decode()] = r
    finally:
        await consumer.stop()
    return seen


def test_a_direct_upload_is_matched_with_the_sha256_fingerprint_measured(
    tmp_path: Path, tube_kafka: Settings, tenants: Tenants, work: tuple[int, str]
) -> None:
    seed, work_id = work
    data, _ = transform_bytes(make_image(seed), "jpeg_q20", seed=seed)
    grant = _grant(tenants.tube)
    assert grant["key"] == f"uploads/tube/{grant['upload_id']}"
    assert "X-Amz-Signature=" in grant["put_url"]
    assert httpx.put(grant["put_url"], content=data).status_code == 200
    event = upload_event(grant, external_id="direct-trust")
    # The publisher's claims about the bytes are not believed.
    claimed = event.object.model_copy(update={"sha256": "0" * 64, "size": 1})
    asyncio.run(_publish(tube_kafka, event.model_copy(update={"object": claimed})))
    upload = tenants.tube.wait_upload(event.upload_id, published_directly=True)
    assert upload["status"] == "matched", upload
    assert upload["matches"][0]["work_id"] == work_id
    assert upload["sha256"] == hashlib.sha256(data).hexdigest()
    report = tenants.label_enforcement.report(upload["report_id"])
    assert report["upload"]["sha256"] == hashlib.sha256(data).hexdigest()
    other = tenants.other_platform
    url = f"{other.endpoints.ingest}/v1/uploads/{event.upload_id}"
    assert other._http.get(url).status_code == 404


def test_publish_upload_command_uses_the_presigned_flow(
    tmp_path: Path, tube_kafka: Settings, stack: Stack, tenants: Tenants, work: tuple[int, str]
) -> None:
    seed, work_id = work
    data, ext = transform_bytes(make_image(seed), "resize_third", seed=seed)
    path = tmp_path / f"copy.{ext}"
    path.write_bytes(data)
    key = tenants.operator.create_key("platform", "tube")
    upload_id = asyncio.run(
        publish_file_async(
            str(path), api_key=key, ingest_url=stack.url("ingest"), settings=tube_kafka
        )
    )
    upload = tenants.tube.wait_upload(upload_id, published_directly=True)
    assert upload["status"] == "matched" and upload["matches"][0]["work_id"] == work_id


def test_refused_events_fail_with_their_code_and_are_dead_lettered(
    stack: Stack, settings: Settings, tube_kafka: Settings, tenants: Tenants, work: tuple[int, str]
) -> None:
    seed, work_id = work
    data = to_bytes(make_image(seed), "PNG")
    secret = (stack.infra.state_dir / "keys" / "upload-token.key").read_text().strip().encode()

    def granted() -> UploadSubmitted:
        grant = _grant(tenants.tube)
        assert httpx.put(grant["put_url"], content=data).status_code == 200
        return upload_event(grant)

    def moved(event: UploadSubmitted, **ref: str) -> UploadSubmitted:
        return event.model_copy(update={"object": event.object.model_copy(update=ref)})

    other_tenant = moved(granted(), key=f"works/{work_id}")  # the rightsholder's original
    other_platform = granted()
    other_platform = moved(
        other_platform.model_copy(update={"tenant": "vidshare"}),
        key=f"uploads/vidshare/{other_platform.upload_id}",
    )
    state = moved(granted(), bucket="cm-state")
    base = granted()
    malformed = moved(
        base.model_copy(update={"upload_id": "upl_x/../../keys/x"}),
        key="uploads/tube/upl_x/../../keys/x",
    )
    tampered = granted()
    head, body, mac = str(tampered.upload_token).split(".")
    tampered = tampered.model_copy(update={"upload_token": f"{head}.{body}.{mac[::-1]}"})
    expired = granted()
    stale = new_grant(settings, "tube", expired.upload_id, now=time.time() - 7200)
    expired = expired.model_copy(update={"upload_token": sign_grant(stale, secret)})
    cases = {
        other_tenant.upload_id: "object_outside_prefix",
        other_platform.upload_id: "upload_token_mismatch",
        state.upload_id: "object_outside_prefix",
        malformed.upload_id: "invalid_id",
        tampered.upload_id: "upload_token_invalid",
        expired.upload_id: "upload_token_expired",
    }
    fine = granted()
    asyncio.run(
        _publish(
            tube_kafka, other_tenant, other_platform, state, malformed, tampered, expired, fine
        )
    )

    failed = asyncio.run(_records(settings, settings.topic(MEDIA_FAILED.name), set(cases)))
    codes = {key: decode_event(r.value).payload.code for key, r in failed.items()}
    assert codes == cases
    dead = asyncio.run(_records(settings, settings.topic(UPLOADS_SUBMITTED.dlq.name), set(cases)))
    assert set(dead) == set(cases)
    for key, record in dead.items():
        headers = {k: v.decode() for k, v in record.headers}
        assert cases[key] in headers["error"], headers
    # Nothing is recorded under ids a publisher chose; no platform sees a refused upload.
    for upload_id in cases:
        for client in (tenants.tube, tenants.other_platform):
            url = f"{client.endpoints.ingest}/v1/uploads/{upload_id}"
            assert client._http.get(url).status_code == 404, upload_id
    # The next honest upload is processed.
    assert tenants.tube.wait_upload(fine.upload_id, published_directly=True)["status"] in (
        "matched",
        "no_match",
    )


@pytest.mark.parametrize(
    "bad",
    ["upl_x%2F..%2F..%2Fkeys", "..%2F..%2Fkeys%2Fx", "upl_" + "f" * 300, "upl_%C3%A9", "%00"],
)
def test_malformed_ids_in_urls_are_404_never_500(bad: str, tenants: Tenants) -> None:
    ingest, report = tenants.tube.endpoints.ingest, tenants.tube.endpoints.report
    for client, url in (
        (tenants.tube, f"{ingest}/v1/uploads/{bad}"),
        (tenants.label, f"{ingest}/v1/works/{bad}"),
        (tenants.label_enforcement, f"{report}/v1/reports/{bad}"),
    ):
        assert client._http.get(url).status_code in (404, 422), url


def test_a_platform_key_cannot_mint_a_direct_upload_for_anyone_else(tenants: Tenants) -> None:
    response = tenants.label._http.post(f"{tenants.label.endpoints.ingest}/v1/uploads/direct")
    assert response.status_code == 403
    unauthenticated = httpx.post(f"{tenants.label.endpoints.ingest}/v1/uploads/direct")
    assert unauthenticated.status_code == 401
