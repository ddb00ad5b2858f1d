"""The provenance spine: evidence model, reader registry, events, and the report decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from contentmatch_fingerprint.signals.provenance import (
    FingerprintReaderSpec,
    ReaderSpec,
    read_provenance,
    with_fingerprint_evidence,
)
from contentmatch_report.builder import build_reports, report_id_for, report_ids_for, summary_of
from contentmatch_report.html import render_report
from contentmatch_report.provenance import provenance_report_id
from contentmatch_report.routes.reports import may_read
from contentmatch_report.signing import ReportSigner
from contentmatch_report.store import scopes_of
from contentmatch_shared.auth import ApiKey
from contentmatch_shared.events import (
    AISystem,
    Match,
    ObjectRef,
    UploadFingerprinted,
    UploadMatched,
    UploadMetadata,
    decode_event,
    encode_event,
    make_envelope,
)
from contentmatch_shared.fingerprints import ImageFingerprint
from contentmatch_shared.provenance import (
    Provenance,
    ProvenanceEvidence,
    ProvenancePublic,
    SignerInfo,
    TdmReservation,
    digital_source_type_name,
    is_ai_digital_source_type,
)
from contentmatch_shared.provenance.evidence import MAX_DETAILS_BYTES

AI_DST = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
NOW = datetime(2026, 12, 7, tzinfo=UTC)


def _c2pa_ai(strength: str = "verified", trust: str = "trusted") -> ProvenanceEvidence:
    return ProvenanceEvidence(
        source="c2pa",
        kind="ai_generated",
        strength=strength,  # type: ignore[arg-type]
        summary="c2pa.created by ImageMaker 1.0 (trainedAlgorithmicMedia)",
        ai_system="ImageMaker 1.0",
        digital_source_type=AI_DST,
        signer=SignerInfo(common_name="Acme signer", issuer="Acme CA", algorithm="Es256",
                          trust=trust),  # type: ignore[arg-type]
    )  # fmt: skip


def _watermark() -> ProvenanceEvidence:
    return ProvenanceEvidence(
        source="watermark", kind="ai_generated", strength="supporting",
        summary="Stable Diffusion 1.x watermark", ai_system="Stable Diffusion",
    )  # fmt: skip


def _tdm(reserved: bool = True, strength: str = "declared") -> ProvenanceEvidence:
    return ProvenanceEvidence(
        source="xmp", kind="tdm_reservation", strength=strength,  # type: ignore[arg-type]
        summary="PLUS DataMining: prohibited",
        tdm_reservation=TdmReservation(reserved=reserved, source="xmp", value="DMI-PROHIBITED"),
    )  # fmt: skip


def _result(provenance: Provenance | None, *matches: Match) -> UploadMatched:
    return UploadMatched(
        upload_id="upl_1", tenant="tube", media_type="image",
        object=ObjectRef(bucket="b", key="k", sha256="00"), metadata=UploadMetadata(),
        matches=list(matches), submitted_at=NOW, matched_at=NOW, provenance=provenance,
    )  # fmt: skip


def _match(kind: str = "work", provenance: Provenance | None = None, **kw: object) -> Match:
    base: dict[str, object] = {
        "work_id": "wrk_1", "kind": kind, "title": "Harbour", "tenant": "label", "score": 0.9,
        "policy": "block", "media_type": "image", "signal": "phash", "distance": 2,
        "work_provenance": provenance,
        "tdm_reservation": provenance.tdm_reservation if provenance else None,
    }  # fmt: skip
    base.update(kw)
    return Match.model_validate(base)


def _reports(result: UploadMatched) -> list[dict]:
    return build_reports(result, {i: NOW for i, _ in report_ids_for(result)})


# -- the model ---------------------------------------------------------------------------------


def test_digital_source_types_by_uri_or_name() -> None:
    assert digital_source_type_name(AI_DST) == "trainedAlgorithmicMedia"
    assert is_ai_digital_source_type("compositeWithTrainedAlgorithmicMedia")
    assert not is_ai_digital_source_type(
        "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
    )
    assert not is_ai_digital_source_type(None)


def test_grounds_are_verified_or_declared_claims_never_a_watermark_or_invalid_manifest() -> None:
    assert Provenance.from_evidence([_c2pa_ai()]).ai_generated
    assert Provenance.from_evidence([_c2pa_ai("declared", "untrusted")]).ai_generated
    assert not Provenance.from_evidence([_watermark()]).ai_generated
    assert not Provenance.from_evidence([_c2pa_ai("invalid", "invalid")]).ai_generated
    both = Provenance.from_evidence([_watermark(), _c2pa_ai()])
    assert both.ai_system == "ImageMaker 1.0"
    assert [p.strength for p in both.ai_evidence] == ["verified", "supporting"]


def test_identifiers_merge_first_wins_and_invalid_pieces_count_for_nothing() -> None:
    a = ProvenanceEvidence(source="iscc", kind="identifier", strength="declared", summary="ISCC",
                           identifiers={"ISCC": "ISCC:KEC1"})  # fmt: skip
    found = {"iscc": "ISCC:OTHER", "isrc": "GBAYE0000351"}
    b = ProvenanceEvidence(source="audio_tags", kind="identifier", strength="declared",
                           summary="tags", identifiers=found)  # fmt: skip
    broken = _tdm().model_copy(update={"strength": "invalid"})
    bundle = Provenance.from_evidence([a, b, broken])
    assert bundle.identifiers == {"iscc": "ISCC:KEC1", "isrc": "GBAYE0000351"}
    assert bundle.tdm_reservation is None
    permitted, reserved = _tdm(reserved=False, strength="verified"), _tdm()
    assert Provenance.from_evidence([permitted, reserved]).tdm_reservation.reserved  # type: ignore[union-attr]


def test_details_are_bounded_and_text_clipped() -> None:
    piece = ProvenanceEvidence(
        source="png_text", kind="metadata", strength="declared", summary="x" * 2000,
        details={f"k{i}": "v" * 500 for i in range(40)},
    )  # fmt: skip
    assert len(piece.summary) == 500
    assert piece.details.get("truncated") is True
    assert len(piece.model_dump_json()) < MAX_DETAILS_BYTES + 1024


def test_provenance_travels_on_events_and_back() -> None:
    provenance = Provenance.from_evidence([_c2pa_ai(), _tdm()])
    event = UploadFingerprinted(
        upload_id="upl_1", tenant="tube", media_type="image",
        object=ObjectRef(bucket="b", key="k"), metadata=UploadMetadata(),
        fingerprint=ImageFingerprint(width=1, height=1, hashes={}), submitted_at=NOW,
        provenance=provenance,
    )  # fmt: skip
    raw = encode_event(make_envelope(event, producer="t", correlation_id="c"))
    assert decode_event(raw).payload.provenance == provenance
    public = ProvenancePublic.of(provenance)
    assert public.ai_generated and public.ai_system == "ImageMaker 1.0"


# -- the reader registry -----------------------------------------------------------------------


def test_a_failing_reader_is_recorded_and_the_others_still_run() -> None:
    def broken(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
        raise ValueError("no good")

    def finds(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
        return [_tdm()] if data.startswith(b"II") else []

    def audio_only(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
        raise AssertionError("not for images")

    readers = [
        ReaderSpec("broken", broken),
        ReaderSpec("audio", audio_only, frozenset({"audio"})),
        ReaderSpec("finds", finds),
    ]
    provenance = read_provenance(b"II*\x00", "image", readers)
    assert [f.reader for f in provenance.failures] == ["broken"]
    assert "no good" in provenance.failures[0].message
    assert provenance.tdm_reservation is not None


def test_fingerprint_readers_add_to_the_bytes_evidence() -> None:
    iscc = ProvenanceEvidence(source="iscc", kind="identifier", strength="declared",
                              summary="ISCC", identifiers={"iscc": "ISCC:EEA"})  # fmt: skip
    spec = FingerprintReaderSpec("iscc", lambda fp: [iscc])
    base = Provenance.from_evidence([_tdm()])
    out = with_fingerprint_evidence(base, ImageFingerprint(width=1, height=1, hashes={}), [spec])
    assert out.identifiers == {"iscc": "ISCC:EEA"} and out.tdm_reservation is not None
    assert (
        with_fingerprint_evidence(base, ImageFingerprint(width=1, height=1, hashes={}), []) is base
    )


# -- report decisions --------------------------------------------------------------------------


def test_ai_signed_upload_without_a_match_gets_an_attribution_report() -> None:
    result = _result(Provenance.from_evidence([_c2pa_ai(), _watermark()]))
    [report] = _reports(result)
    assert report["report_id"] == provenance_report_id("upl_1")
    assert report["kind"] == "attribution" and report["work"] is None
    assert report["decision"]["action"] == "label_ai_generated"
    assert "ImageMaker 1.0" in report["decision"]["reason"]
    assert "trust: trusted" in report["decision"]["reason"]
    attribution = report["attribution"]
    assert attribution["basis"] == "provenance" and attribution["named_system"] == "ImageMaker 1.0"
    assert [g["strength"] for g in attribution["grounds"]] == ["verified"]
    assert [g["source"] for g in attribution["not_grounds"]] == ["watermark"]
    assert report["provenance"]["upload"]["ai_generated"] is True
    # Readable by the platform and operators; no work tenant is involved.
    assert scopes_of(report) == [("all", "_"), ("platform", "tube")]
    assert summary_of(report)["work_id"] is None
    assert may_read(ApiKey(key_id="k", tenant="tube", role="platform"), report)
    assert not may_read(ApiKey(key_id="k", tenant="label", role="rightsholder"), report)


@pytest.mark.parametrize(
    "pieces",
    [[], [_c2pa_ai("invalid", "invalid")], [_watermark()], [_tdm()]],
    ids=["plain", "tampered", "watermark-alone", "tdm-only"],
)
def test_no_attribution_report_without_grounds(pieces: list[ProvenanceEvidence]) -> None:
    assert _reports(_result(Provenance.from_evidence(pieces))) == []
    assert _reports(_result(None)) == []


def test_enforcement_report_carries_upload_provenance_and_the_works_tdm_reservation() -> None:
    work_prov = Provenance.from_evidence([_tdm()])
    result = _result(Provenance.from_evidence([_c2pa_ai()]), _match(provenance=work_prov))
    reports = _reports(result)
    assert [r["kind"] for r in reports] == ["enforcement", "attribution"]
    enforcement, attribution = reports
    section = enforcement["provenance"]
    assert section["upload"]["evidence"][0]["signer"]["trust"] == "trusted"
    assert "reserves text-and-data mining" in section["work_tdm_reservation"]["statement"]
    assert "work_provenance" not in enforcement["matches"][0]
    assert enforcement["matches"][0]["tdm_reservation"]["value"] == "DMI-PROHIBITED"
    # The two reports name each other.
    assert enforcement["related_reports"] == [
        {"report_id": attribution["report_id"], "kind": "attribution"}
    ]
    assert attribution["related_reports"] == [
        {"report_id": report_id_for("upl_1", "wrk_1"), "kind": "enforcement"}
    ]


def test_a_registered_ai_output_match_carries_the_provenance_without_a_second_report() -> None:
    ai = AISystem(provider="Acme", model="gen-1")
    result = _result(Provenance.from_evidence([_c2pa_ai()]), _match("ai_output", ai_system=ai))
    [report] = _reports(result)
    assert report["attribution"]["basis"] == "registered_output"
    assert [g["source"] for g in report["attribution"]["provenance_grounds"]] == ["c2pa"]


def test_page_shows_provenance_evidence_at_a_glance(tmp_path: Path) -> None:
    signer = ReportSigner.from_config("", str(tmp_path / "signing.key"))
    result = _result(Provenance.from_evidence([_c2pa_ai(), _c2pa_ai("invalid", "invalid")]))
    [report] = _reports(result)
    page = render_report(signer.sign(report), signer, {})
    assert "by its own provenance: ImageMaker 1.0" in page
    assert 'class="strength verified"' in page and 'class="strength invalid"' in page
    assert "Acme signer" in page and "trust: trusted" in page
    assert "Authentic" in page and "NOT AUTHENTIC" not in page
    work_prov = Provenance.from_evidence([_tdm()])
    enforcement = _reports(_result(None, _match(provenance=work_prov)))[0]
    page = render_report(signer.sign(enforcement), signer, {})
    assert "reserves text-and-data mining" in page
