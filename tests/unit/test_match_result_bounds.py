"""uploads.matched stays within the record limit whatever the registry holds."""

from __future__ import annotations

from datetime import UTC, datetime

from contentmatch_match.result_bounds import (
    MAX_IDENTIFIER_BYTES,
    MAX_MATCHES,
    bound_result,
    record_bytes,
)
from contentmatch_report.builder import build_reports, report_id_for
from contentmatch_shared.events import Match, ObjectRef, UploadMatched, UploadMetadata
from contentmatch_shared.kafka.producer import MAX_RECORD_BYTES

MIB = 1024 * 1024


def _match(i: int, identifier_bytes: int = 0, evidence_bytes: int = 0) -> Match:
    # A work registered before ingest bounded metadata: many identifiers, ~identifier_bytes.
    identifiers = {"isrc": f"GBCMA26{i:05d}"}
    for n in range(identifier_bytes // 1000):
        identifiers[f"legacy_{n}"] = "x" * 980
    evidence: dict[str, object] = {"phash": 4, "region": {"x": 0, "y": 0, "w": 1, "h": 1}}
    if evidence_bytes:
        evidence["debug"] = ["y" * 1000] * (evidence_bytes // 1000)
    return Match(
        work_id=f"wrk_{i}", kind="work", title=f"Work {i}", tenant="label",
        score=round(1 - i / 100, 4), policy="block", media_type="image", signal="phash",
        distance=4.0, evidence=evidence, identifiers=identifiers, territories=["FR", "DE"],
        work_object=ObjectRef(bucket="cm-media", key=f"works/label/wrk_{i}"),
    )  # fmt: skip


def _result(matches: list[Match]) -> UploadMatched:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    return UploadMatched(
        upload_id="upl_1", tenant="tube", media_type="image",
        object=ObjectRef(bucket="cm-media", key="uploads/tube/upl_1", sha256="00"),
        metadata=UploadMetadata(), matches=matches, submitted_at=now, matched_at=now,
    )  # fmt: skip


def test_ordinary_results_pass_unchanged() -> None:
    result = _result([_match(i) for i in range(3)])
    assert bound_result(result) == result


def test_ten_megabyte_identifier_matches_fit_one_record() -> None:
    result = _result([_match(i, identifier_bytes=MIB) for i in range(12)])
    assert record_bytes(result) > MAX_RECORD_BYTES  # what the producer refused before
    bounded = bound_result(result)
    assert record_bytes(bounded) < 200 * 1024
    assert [m.work_id for m in bounded.matches] == [f"wrk_{i}" for i in range(MAX_MATCHES)]
    for match in bounded.matches:
        assert match.identifiers["isrc"].startswith("GBCMA26")  # registered first, kept
        assert len(str(match.identifiers)) <= MAX_IDENTIFIER_BYTES
        assert match.territories == ["FR", "DE"] and match.evidence["phash"] == 4
        (note,) = match.omitted
        assert note.endswith("identifiers (record size)") and "of 1049 identifiers" in note
        assert match.work_object is not None  # the report still finds the work's thumbnail


def test_huge_evidence_is_reduced_to_its_numbers() -> None:
    (match,) = bound_result(_result([_match(1, evidence_bytes=MIB)])).matches
    assert match.evidence == {"phash": 4}
    assert match.omitted == ["evidence beyond its numbers (record size)"]


def test_a_result_still_too_large_is_published_smaller_not_refused() -> None:
    result = _result([_match(i) for i in range(6)])
    full = record_bytes(result)
    # Room for the envelope and about three matches' worth of everything.
    limit = full - 2 * (full - record_bytes(_result([]))) // 6
    smaller = bound_result(result, max_bytes=limit)
    assert record_bytes(smaller) <= limit
    assert 1 <= len(smaller.matches) < 6
    assert [m.work_id for m in smaller.matches] == [f"wrk_{i}" for i in range(len(smaller.matches))]
    # ... and at the very least the best match is published.
    assert [m.work_id for m in bound_result(result, max_bytes=1).matches] == ["wrk_0"]


def test_the_report_says_what_was_left_out() -> None:
    bounded = bound_result(_result([_match(0, identifier_bytes=MIB)]))
    now = datetime.now(UTC)
    (report,) = build_reports(bounded, {report_id_for("upl_1", "wrk_0"): now})
    assert report["work"]["omitted"] == bounded.matches[0].omitted
    assert "omitted" not in report["matches"][0] and "work_object" not in report["matches"][0]
    assert (
        "omitted" not in build_reports(_result([_match(0)]), {report["report_id"]: now})[0]["work"]
    )
    assert MAX_RECORD_BYTES == 8 * MIB
