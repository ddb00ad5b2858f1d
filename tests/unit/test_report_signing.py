from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contentmatch_report.jcs import canonicalize
from contentmatch_report.signing import (
    ReportSigner,
    VerificationError,
    canonical_bytes,
    verify_report,
    verify_report_with_keys,
)
from contentmatch_shared.settings import PreviousSigningKey


@pytest.fixture
def signer(tmp_path: Path) -> ReportSigner:
    return ReportSigner.from_config("", str(tmp_path / "keys" / "signing.key"))


REPORT = {
    "report_id": "rep_1",
    "kind": "enforcement",
    "created_at": "2026-11-27T00:00:00+00:00",
    "matches": [{"work_id": "wrk_1", "score": 0.953125, "title": "Ünïcode ☀"}],
    "evidence": {"distance": 3.0},
}


def test_round_trip_through_stored_bytes(signer: ReportSigner) -> None:
    signed = signer.sign(REPORT)
    stored = json.dumps(signed, ensure_ascii=False, separators=(",", ":")).encode()
    verify_report(json.loads(stored), signer.public_key_info()["public_key"])


def test_one_changed_byte_is_detected(signer: ReportSigner) -> None:
    stored = bytearray(json.dumps(signer.sign(REPORT)).encode())
    at = stored.index(b"0.953125") + 3
    stored[at] = ord("8")  # 0.953125 -> 0.958125
    with pytest.raises(VerificationError, match="altered"):
        verify_report(json.loads(bytes(stored)), signer.public_key_info()["public_key"])


def test_other_key_and_missing_signature_are_refused(signer: ReportSigner, tmp_path: Path) -> None:
    other = ReportSigner.from_config("", str(tmp_path / "other.key"))
    signed = signer.sign(REPORT)
    with pytest.raises(VerificationError, match="another key"):
        verify_report(signed, other.public_key_info()["public_key"])
    with pytest.raises(VerificationError, match="no signature"):
        verify_report(REPORT, signer.public_key_info()["public_key"])


def test_dev_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "k" / "signing.key"
    first = ReportSigner.from_config("", str(path))
    assert path.stat().st_mode & 0o777 == 0o600
    second = ReportSigner.from_config("", str(path))
    assert first.key_id == second.key_id
    configured = ReportSigner.from_config(path.read_text(), "/nonexistent")
    assert configured.key_id == first.key_id
    assert len(base64.b64decode(first.public_key_info()["public_key"])) == 32


def test_reports_are_signed_over_rfc8785(signer: ReportSigner) -> None:
    signed = signer.sign({**REPORT, "evidence": {"distance": 3.0, "ratio": 1e-7}})
    assert signed["signature"]["canonicalization"] == "RFC8785"
    body = canonical_bytes(signed)
    assert b'"distance":3,"ratio":1e-7' in body  # ECMAScript numbers, not Python's 3.0 / 1e-07
    public = Ed25519PublicKey.from_public_bytes(
        base64.b64decode(signer.public_key_info()["public_key"])
    )
    public.verify(base64.b64decode(signed["signature"]["value"]), canonicalize(
        {k: v for k, v in signed.items() if k != "signature"}
    ))  # fmt: skip


def test_reports_signed_before_rfc8785_still_verify(signer: ReportSigner) -> None:
    """A report stored with the earlier canonical form (README's by-hand recipe of then)."""
    body = {**REPORT, "evidence": {"distance": 3.0}}
    legacy = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    value = base64.b64encode(signer._private.sign(legacy)).decode()
    stored = {**body, "signature": {"algorithm": "Ed25519", "key_id": signer.key_id,
              "canonicalization": "json-sorted-compact-utf8", "value": value}}  # fmt: skip
    verify_report(json.loads(json.dumps(stored)), signer.public_key_info()["public_key"])
    # The field is honoured, not guessed: the same signature under the other form fails.
    stored["signature"]["canonicalization"] = "RFC8785"
    with pytest.raises(VerificationError, match="altered"):
        verify_report(stored, signer.public_key_info()["public_key"])
    stored["signature"]["canonicalization"] = "c14n-of-my-own"
    with pytest.raises(VerificationError, match="unsupported canonicalization"):
        verify_report(stored, signer.public_key_info()["public_key"])


def test_reports_signed_before_a_rotation_verify_by_key_id(tmp_path: Path) -> None:
    old = ReportSigner.from_config("", str(tmp_path / "old.key"))
    before = old.sign(REPORT)
    retired = PreviousSigningKey(
        public_key=old.public_key_info()["public_key"],
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_until=datetime(2026, 12, 1, tzinfo=UTC),
    )
    new = ReportSigner.from_config(
        "", str(tmp_path / "new.key"), valid_from=retired.valid_until, previous=[retired]
    )
    after = new.sign(REPORT)
    listing = new.public_keys()
    assert [k["key_id"] for k in listing] == [new.key_id, old.key_id]
    assert [k["current"] for k in listing] == [True, False]
    assert listing[1]["valid_until"] == "2026-12-01T00:00:00+00:00"
    assert listing[0]["valid_from"] == "2026-12-01T00:00:00+00:00"
    assert listing[0]["valid_until"] is None
    assert new.public_key_info() == listing[0]
    keys = new.verification_keys()
    assert verify_report_with_keys(before, keys) == old.key_id
    assert verify_report_with_keys(after, keys) == new.key_id
    stranger = ReportSigner.from_config("", str(tmp_path / "stranger.key")).sign(REPORT)
    with pytest.raises(VerificationError, match="not one of the known keys"):
        verify_report_with_keys(stranger, keys)
    # A report claiming an old key id but signed by the current key is still caught.
    forged = {**after, "signature": {**after["signature"], "key_id": old.key_id}}
    with pytest.raises(VerificationError, match="altered"):
        verify_report_with_keys(forged, keys)


def test_canonical_form_ignores_key_order_and_whitespace_only() -> None:
    shuffled = {k: REPORT[k] for k in reversed(list(REPORT))}
    assert canonical_bytes(shuffled) == canonical_bytes(REPORT)
    pretty = json.loads(json.dumps(REPORT, indent=4, ensure_ascii=True))
    assert canonical_bytes(pretty) == canonical_bytes(REPORT)
    # UTF-8 as is (not \\u escapes), no spaces, sorted keys, no signature member.
    body = canonical_bytes({**REPORT, "signature": {"value": "x"}})
    assert "Ünïcode ☀".encode() in body
    assert b'"created_at":"2026' in body and b", " not in body and b"signature" not in body
    assert body.index(b'"created_at"') < body.index(b'"evidence"') < body.index(b'"kind"')


def test_any_single_byte_change_of_the_served_bytes_is_caught(signer: ReportSigner) -> None:
    """Every byte position of a stored report: a changed byte either breaks the JSON (not a
    report any more) or fails verification; it never verifies."""
    stored = json.dumps(signer.sign(REPORT), ensure_ascii=False, separators=(",", ":")).encode()
    public = signer.public_key_info()["public_key"]
    signature_at = stored.index(b'"signature"')
    for at in range(signature_at):  # the body before the signature member
        altered = bytearray(stored)
        altered[at] = ord("#") if altered[at] != ord("#") else ord("%")
        try:
            parsed = json.loads(bytes(altered))
        except ValueError:
            continue
        with pytest.raises(VerificationError):
            verify_report(parsed, public)


def test_a_changed_picture_hash_is_caught(signer: ReportSigner) -> None:
    signed = signer.sign({**REPORT, "evidence": {"pictures": [{"name": "w.jpg", "sha256": "aa"}]}})
    signed["evidence"]["pictures"][0]["sha256"] = "ab"
    with pytest.raises(VerificationError, match="altered"):
        verify_report(signed, signer.public_key_info()["public_key"])


def test_a_malformed_public_key_is_a_reason_not_a_crash(signer: ReportSigner) -> None:
    with pytest.raises(VerificationError, match="public key"):
        verify_report(signer.sign(REPORT), "not base64!")
    with pytest.raises(VerificationError, match="public key"):
        verify_report(signer.sign(REPORT), base64.b64encode(b"short").decode())
