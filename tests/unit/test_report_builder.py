from __future__ import annotations

import json
from datetime import UTC, datetime

from contentmatch_report.builder import (
    EvidenceAttachments,
    build_reports,
    decision_for,
    report_id_for,
)
from contentmatch_report.store import decode_cursor, encode_cursor, ts_key
from contentmatch_shared.events import (
    AISystem,
    Match,
    MatchSegment,
    ObjectRef,
    UploadMatched,
    UploadMetadata,
)


def _match(work_id: str, kind: str = "work", **kw: object) -> Match:
    base: dict[str, object] = {
        "work_id": work_id,
        "kind": kind,
        "title": f"Title {work_id}",
        "tenant": "label",
        "score": 0.9,
        "policy": "block",
        "media_type": "audio",
        "signal": "chromaprint",
        "distance": 0.1,
        "segments": [MatchSegment(query_start=0, query_end=10, ref_start=30, ref_end=40)],
    }
    base.update(kw)
    return Match.model_validate(base)


def _result(*matches: Match, territory: str | None = None) -> UploadMatched:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    return UploadMatched(
        upload_id="upl_1",
        tenant="tube",
        media_type="audio",
        object=ObjectRef(bucket="b", key="k", sha256="00"),
        metadata=UploadMetadata(territory=territory),
        matches=list(matches),
        submitted_at=now,
        matched_at=now,
    )


def test_one_report_per_matched_work_linked_to_each_other() -> None:
    ai = AISystem(provider="Acme", model="gen-1", version="2")
    result = _result(_match("w1"), _match("w2", kind="ai_output", tenant="acme", ai_system=ai))
    ids = [report_id_for("upl_1", "w1"), report_id_for("upl_1", "w2")]
    now = datetime.now(UTC)
    reports = build_reports(result, {i: now for i in ids})
    assert [r["kind"] for r in reports] == ["enforcement", "attribution"]
    assert [r["report_id"] for r in reports[0]["related_reports"]] == [ids[1]]
    assert [r["report_id"] for r in reports[1]["related_reports"]] == [ids[0]]
    # By id and kind only: the other work may be another tenant's, and every reader sees this.
    assert reports[0]["related_reports"] == [{"report_id": ids[1], "kind": "attribution"}]
    assert reports[1]["related_reports"] == [{"report_id": ids[0], "kind": "enforcement"}]
    assert reports[1]["attribution"] == {
        "label": "AI-generated",
        "ai_system": {"provider": "Acme", "model": "gen-1", "version": "2"},
        "registered_by": "acme",
        "basis": "registered_output",
    }
    assert reports[1]["decision"]["action"] == "label_ai_generated"
    assert reports[0]["evidence"]["segments"][0]["ref_start"] == 30
    assert reports[0]["evidence"]["matched_seconds"] == 10


def test_report_ids_are_stable_per_upload_and_work() -> None:
    assert report_id_for("u", "w") == report_id_for("u", "w")
    assert report_id_for("u", "w") != report_id_for("u", "w2")


def test_territories_limit_the_action() -> None:
    work = _match("w1", territories=["FR", "DE"])
    assert decision_for(work, "fr")["action"] == "block"
    outside = decision_for(work, "US")
    assert outside["action"] == "none"
    assert outside["applies_in_territory"] is False
    unknown = decision_for(work, None)
    assert unknown["action"] == "block"
    assert "territory is unknown" in unknown["reason"]
    assert decision_for(_match("w2", territories=["fr"]), "FR")["applies_in_territory"] is True
    anywhere = decision_for(_match("w3"), "US")
    assert anywhere["action"] == "block" and anywhere["applies_in_territory"] is None


def test_evidence_names_distances_regions_and_pictures() -> None:
    image = _match(
        "w1",
        media_type="image",
        signal="orb",
        segments=None,
        evidence={
            "phash": 12,
            "pdq": 40,
            "orb_inliers": 55,
            "region": {"x": 0.1, "y": 0, "w": 0.5, "h": 0.5},
        },
    )
    picture = {"name": "work.jpg", "role": "work_thumbnail", "content_type": "image/jpeg",
               "size": 3, "sha256": "ab"}  # fmt: skip
    attachments = {"w1": EvidenceAttachments(references=[picture], missing=["upload: gone"])}
    now = datetime.now(UTC)
    (report,) = build_reports(_result(image), {report_id_for("upl_1", "w1"): now}, attachments)
    evidence = report["evidence"]
    assert evidence["signal_distances"] == {"phash": 12, "pdq": 40}  # inliers are not a distance
    assert evidence["signal_agreements"] == {"orb_inliers": 55}
    assert evidence["region"] == {"x": 0.1, "y": 0, "w": 0.5, "h": 0.5}
    assert "query_region" not in evidence
    assert evidence["pictures"] == [picture]
    assert evidence["pictures_missing"] == ["upload: gone"]
    assert "segments" not in evidence


def test_cursor_round_trip_and_time_keys_sort() -> None:
    key = "index/tenant/label/any/20261127T000000000000Z_rep_x.json"
    assert decode_cursor(encode_cursor(key)) == key
    early = ts_key(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    late = ts_key(datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC))
    assert early < late and len(early) == len(late)


def test_a_report_names_no_other_work_of_the_upload() -> None:
    mine = _match("wrk_mine", title="Mine", tenant="label")
    theirs = _match("wrk_theirs", title="Secret Rival Title", tenant="rival-co")
    now = datetime.now(UTC)
    ids = [report_id_for("upl_1", "wrk_mine"), report_id_for("upl_1", "wrk_theirs")]
    report = build_reports(_result(mine, theirs), {i: now for i in ids})[0]
    text = json.dumps(report)
    for secret in ("wrk_theirs", "Secret Rival Title", "rival-co"):
        assert secret not in text
