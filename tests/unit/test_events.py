from __future__ import annotations

import json

import pytest

from contentmatch_shared.events import (
    InvalidEvent,
    ObjectRef,
    UploadSubmitted,
    WorkFingerprinted,
    WorkMetadata,
    decode_event,
    encode_event,
    make_envelope,
    utcnow,
)
from contentmatch_shared.fingerprints import ImageFingerprint
from contentmatch_shared.topics import CONSUMED_TOPICS, all_specs, by_name


def test_envelope_round_trip_keeps_typed_payload() -> None:
    payload = WorkFingerprinted(
        work_id="wrk_1",
        tenant="label",
        media_type="image",
        object=ObjectRef(bucket="b", key="works/wrk_1", size=3, sha256="ab"),
        metadata=WorkMetadata(title="Sunrise", kind="work", policy="block"),
        fingerprint=ImageFingerprint(width=10, height=20, hashes={"phash": "00ff"}),
        fingerprinted_at=utcnow(),
    )
    envelope = make_envelope(payload, producer="test", correlation_id="wrk_1")
    decoded = decode_event(encode_event(envelope))
    assert decoded.event_type == "work.fingerprinted"
    assert decoded.schema_version == 1
    assert isinstance(decoded.payload, WorkFingerprinted)
    assert isinstance(decoded.payload.fingerprint, ImageFingerprint)
    assert decoded.payload == payload


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "no value"),
        (b"not json", "not a valid envelope"),
        (b'{"event_type": "x"}', "not a valid envelope"),
    ],
)
def test_malformed_records_are_invalid(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode_event(raw)


def _envelope_json(**overrides: object) -> bytes:
    payload = UploadSubmitted(upload_id="u", tenant="p", object=ObjectRef(bucket="b", key="k"))
    body = json.loads(encode_event(make_envelope(payload, producer="t", correlation_id="u")))
    body.update(overrides)
    return json.dumps(body).encode()


def test_unknown_event_type_and_version_are_invalid() -> None:
    with pytest.raises(InvalidEvent, match="unknown event_type"):
        decode_event(_envelope_json(event_type="nope"))
    with pytest.raises(InvalidEvent, match="schema_version"):
        decode_event(_envelope_json(schema_version=99))
    with pytest.raises(InvalidEvent, match="payload"):
        decode_event(_envelope_json(payload={"upload_id": "u"}))


def test_additive_fields_are_accepted() -> None:
    raw = json.loads(_envelope_json())
    raw["payload"]["a_future_field"] = 1
    raw["a_future_envelope_field"] = True
    assert decode_event(json.dumps(raw).encode()).payload.upload_id == "u"


def test_topic_registry_declares_a_dlq_for_every_consumed_topic() -> None:
    names = [s.name for s in all_specs()]
    assert len(names) == len(set(names))
    for spec in CONSUMED_TOPICS:
        assert by_name(f"{spec.name}.dlq").key == spec.key
    assert by_name("works.registry").cleanup_policy == "compact"
