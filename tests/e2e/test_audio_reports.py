"""An audio mashup end to end: one report per matched work, with the right segments.

Three generated tracks are registered; a platform uploads a mashup of parts of two of them. Each
of the two gets a report whose segments say where in the upload and where in the work the music
is (within a second of the truth), with a timeline picture; the third gets none.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from contentmatch_shared.client import Endpoints
from tests.e2e.conftest import Tenants
from tests.e2e.report_parties import ReportParties, make_parties
from tests.fixtures.audio import DEFAULT_SR, excerpt, make_track, mashup, write_wav

SEEDS = (8101, 8102, 8103)
TRACK_S = 36.0
CROSSFADE_S = 0.5
# The mashup: 16 s of track A from 6 s, then 16 s of track B from 12 s.
PART_A = (SEEDS[0], 6.0, 16.0)
PART_B = (SEEDS[1], 12.0, 16.0)
TOLERANCE_S = 1.0


def _wav(samples: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="cm-test-") as tmp:
        path = Path(tmp) / "track.wav"
        write_wav(path, samples, DEFAULT_SR)
        return path.read_bytes()


@pytest.fixture(scope="module")
def parties(tenants: Tenants, endpoints: Endpoints) -> Iterator[ReportParties]:
    made = make_parties(tenants.operator, endpoints, "audio")
    yield made
    made.close()


@pytest.fixture(scope="module")
def tracks(parties: ReportParties) -> dict[int, str]:
    """seed -> work_id, all indexed."""
    ids = {}
    for i, seed in enumerate(SEEDS):
        ids[seed] = parties.label.register_work(
            _wav(make_track(seed, TRACK_S)),
            f"track{seed}.wav",
            {
                "title": f"Track {chr(65 + i)}",
                "policy": ("block", "monetize", "track")[i],
                "identifiers": {"isrc": f"GBCMA26{seed:05d}"},
            },
        )
    for work_id in ids.values():
        work = parties.label.wait_work(work_id)
        assert work["status"] == "indexed", work
        assert work["media_type"] == "audio"
    return ids


def _truth() -> dict[int, dict[str, float]]:
    """Where each part sits in the upload and in its work (see ``mashup`` for the join)."""
    (seed_a, start_a, len_a), (seed_b, start_b, len_b) = PART_A, PART_B
    b_at = len_a - CROSSFADE_S  # b's first sample plays here
    return {
        seed_a: {"query_start": 0.0, "query_end": len_a - CROSSFADE_S / 2, "offset": start_a},
        seed_b: {"query_start": b_at + CROSSFADE_S / 2, "query_end": b_at + len_b,
                 "offset": start_b - b_at},
    }  # fmt: skip


@pytest.fixture(scope="module")
def mashup_upload(parties: ReportParties, tracks: dict[int, str]) -> dict[str, Any]:
    parts = [
        excerpt(make_track(seed, TRACK_S), DEFAULT_SR, start, length)
        for seed, start, length in (PART_A, PART_B)
    ]
    data = _wav(mashup(parts[0], parts[1], DEFAULT_SR, CROSSFADE_S))
    upload_id = parties.tube.submit_upload(data, "mashup.wav", {"external_id": "mix-1"})
    return parties.tube.wait_upload(upload_id, timeout_s=180)


def test_one_report_per_matched_work(
    parties: ReportParties, tracks: dict[int, str], mashup_upload: dict[str, Any]
) -> None:
    upload = mashup_upload
    assert upload["status"] == "matched", upload
    matched = {m["work_id"] for m in upload["matches"]}
    expected = {tracks[PART_A[0]], tracks[PART_B[0]]}
    assert matched == expected, upload["matches"]
    assert tracks[SEEDS[2]] not in matched
    assert {r["work_id"] for r in upload["reports"]} == expected
    assert len(upload["reports"]) == 2
    listed = parties.label_enforcement.reports(limit=100)["reports"]
    assert sorted(s["work_id"] for s in listed if s["upload_id"] == upload["upload_id"]) == sorted(
        expected
    )


def test_segments_are_within_a_second_of_the_truth(
    parties: ReportParties, tracks: dict[int, str], mashup_upload: dict[str, Any]
) -> None:
    by_work = {r["work_id"]: r["report_id"] for r in mashup_upload["reports"]}
    wrong = []  # every work checked before failing: the message shows the whole picture
    for seed, truth in _truth().items():
        report = parties.label_enforcement.report(by_work[tracks[seed]])
        assert report["kind"] == "enforcement"
        segments = report["evidence"]["segments"]
        assert segments, report["evidence"]
        assert segments == report["matches"][0]["segments"]
        start = min(s["query_start"] for s in segments)
        end = max(s["query_end"] for s in segments)
        covered = sum(s["query_end"] - s["query_start"] for s in segments)
        offsets_ok = all(  # each segment maps upload time to the right place in the work
            abs((s["ref_start"] - s["query_start"]) - truth["offset"]) <= TOLERANCE_S
            and abs((s["ref_end"] - s["query_end"]) - truth["offset"]) <= TOLERANCE_S
            for s in segments
        )
        if not (
            abs(start - truth["query_start"]) <= TOLERANCE_S
            and abs(end - truth["query_end"]) <= TOLERANCE_S
            and offsets_ok
            and covered >= (truth["query_end"] - truth["query_start"]) - 2 * TOLERANCE_S
        ):
            wrong.append({"seed": seed, "truth": truth, "segments": segments})
    assert not wrong, wrong


def test_reports_carry_a_timeline_of_the_upload(
    parties: ReportParties, mashup_upload: dict[str, Any]
) -> None:
    for ref in mashup_upload["reports"]:
        report = parties.tube.report(ref["report_id"])
        evidence = report["evidence"]
        (picture,) = evidence["pictures"]
        assert picture["name"] == "timeline.png" and picture["content_type"] == "image/png"
        assert abs(evidence["upload_duration_s"] - 31.5) < 0.2
        url = f"{parties.tube.endpoints.report}/v1/reports/{ref['report_id']}/assets/timeline.png"
        got = parties.tube._http.get(url)
        assert got.status_code == 200
        assert Image.open(io.BytesIO(got.content)).size[0] == 960
        assert [r["report_id"] for r in report["related_reports"]] == [
            r["report_id"] for r in mashup_upload["reports"] if r is not ref
        ]
        page = parties.tube.report_raw(ref["report_id"], "html").text
        assert "data:image/png;base64," in page
        first = evidence["segments"][0]
        assert _timecode(first["query_start"]) in page and _timecode(first["ref_end"]) in page
    assert httpx.get(f"{parties.tube.endpoints.report}/v1/reports/public-key").status_code == 200


def _timecode(seconds: float) -> str:
    tenths = round(seconds * 10)
    return f"{tenths // 600:02d}:{tenths % 600 // 10:02d}.{tenths % 10}"
