"""What the services believe about an upload.submitted event: only what its token proves."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from contentmatch_shared.events import ObjectRef, UploadSubmitted, new_id
from contentmatch_shared.settings import Settings
from contentmatch_shared.upload_tokens import (
    UNAUTHENTIC_REFUSALS,
    UploadRefused,
    new_grant,
    published_at,
    sign_grant,
    verify_upload,
)

SECRET = b"test-secret"
SETTINGS = Settings(upload_token_ttl_s=60)
NOW = 1_800_000_000.0


def _event(tenant: str = "tube", **changes: object) -> UploadSubmitted:
    upload_id = str(changes.pop("upload_id", new_id("upl")))
    grant = new_grant(SETTINGS, tenant, upload_id, now=NOW)
    event = UploadSubmitted(
        upload_id=upload_id,
        tenant=tenant,
        object=ObjectRef(bucket=grant.bucket, key=grant.key, sha256="0" * 64, size=1),
        upload_token=sign_grant(grant, SECRET),
    )
    return event.model_copy(update=changes)


def _refusal(event: UploadSubmitted, at: float = NOW) -> UploadRefused:
    with pytest.raises(UploadRefused) as caught:
        verify_upload(event, SETTINGS, SECRET, at=at)
    return caught.value


def test_a_granted_upload_passes_without_its_claimed_sha256() -> None:
    event = _event()
    trusted = verify_upload(event, SETTINGS, SECRET, at=NOW + 59)
    assert (trusted.tenant, trusted.upload_id, trusted.object.key) == (
        event.tenant,
        event.upload_id,
        event.object.key,
    )
    # The publisher's claims about the bytes are dropped: fingerprint measures them.
    assert trusted.object.sha256 is None and trusted.object.size is None


def test_ingest_measured_sha256_is_carried_by_the_token() -> None:
    upload_id = new_id("upl")
    grant = new_grant(SETTINGS, "tube", upload_id, sha256="a" * 64, size=7, now=NOW)
    event = UploadSubmitted(
        upload_id=upload_id,
        tenant="tube",
        object=ObjectRef(bucket=grant.bucket, key=grant.key, sha256="b" * 64),
        upload_token=sign_grant(grant, SECRET),
    )
    assert verify_upload(event, SETTINGS, SECRET, at=NOW).object.sha256 == "a" * 64


def test_another_tenants_object_is_refused() -> None:
    event = _event()
    other = event.object.model_copy(update={"key": f"uploads/label/{event.upload_id}"})
    assert _refusal(event.model_copy(update={"object": other})).code == "object_outside_prefix"
    work = event.object.model_copy(update={"key": f"works/{new_id('wrk')}"})
    assert _refusal(event.model_copy(update={"object": work})).code == "object_outside_prefix"


def test_the_state_bucket_is_refused() -> None:
    event = _event()
    state = ObjectRef(bucket="cm-state", key=f"uploads/tube/{event.upload_id}")
    assert _refusal(event.model_copy(update={"object": state})).code == "object_outside_prefix"


def test_another_platforms_name_is_refused() -> None:
    event = _event()
    key = f"uploads/vidshare/{event.upload_id}"
    forged = event.model_copy(
        update={"tenant": "vidshare", "object": event.object.model_copy(update={"key": key})}
    )
    assert _refusal(forged).code == "upload_token_mismatch"


def test_another_uploads_token_is_refused() -> None:
    event, other = _event(), _event()
    swapped = event.model_copy(update={"upload_token": other.upload_token})
    assert _refusal(swapped).code == "upload_token_mismatch"


@pytest.mark.parametrize("upload_id", ["upl_x/../../keys/abc", "upl_" + "0" * 31, "../upl"])
def test_malformed_ids_are_refused(upload_id: str) -> None:
    refusal = _refusal(_event(upload_id=upload_id))
    assert refusal.code == "invalid_id" and not refusal.authentic


def test_tampered_or_missing_tokens_are_refused() -> None:
    event = _event()
    token = str(event.upload_token)
    head, body, mac = token.split(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    for bad in (None, "", f"{head}.{body}.{flipped}", f"{head}.{body}x.{mac}", "v2.a.b", "x"):
        refusal = _refusal(event.model_copy(update={"upload_token": bad}))
        assert refusal.code == "upload_token_invalid", bad
    forged = sign_grant(new_grant(SETTINGS, "tube", event.upload_id, now=NOW), b"guessed")
    assert _refusal(event.model_copy(update={"upload_token": forged})).code == (
        "upload_token_invalid"
    )


def test_an_expired_token_is_refused_but_authentic() -> None:
    refusal = _refusal(_event(), at=NOW + 61)
    assert refusal.code == "upload_token_expired" and refusal.authentic
    assert refusal.code not in UNAUTHENTIC_REFUSALS


def test_the_brokers_append_time_dates_the_event() -> None:
    appended = SimpleNamespace(timestamp_type=1, timestamp=1_700_000_000_000)
    assert published_at(appended) == 1_700_000_000.0
    assert published_at(SimpleNamespace(timestamp=None)) > 1_700_000_000.0
