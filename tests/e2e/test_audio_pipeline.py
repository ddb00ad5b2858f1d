"""Audio end to end, through HTTP only: clips inside registered tracks, with their segments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import Tenants
from tests.fixtures import audio

SR = audio.DEFAULT_SR
TRACK_SECONDS = 40.0
# seed -> the format the rightsholder registers it in
REGISTERED = {201: "wav", 202: "flac", 203: "mp3", 204: "ogg"}
UNREGISTERED = (301, 302, 303)


def _file(samples: np.ndarray, codec: str, tmp: Path, name: str) -> tuple[bytes, str]:
    wav = tmp / f"{name}.wav"
    audio.write_wav(wav, samples, SR)
    if codec == "wav":
        return wav.read_bytes(), f"{name}.wav"
    out = tmp / f"{name}{audio.codec_extension(codec)}"
    audio.encode(wav, out, codec)
    return out.read_bytes(), out.name


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio-e2e")


@pytest.fixture(scope="module")
def tracks() -> dict[int, np.ndarray]:
    return {s: audio.make_track(s, TRACK_SECONDS, SR) for s in (*REGISTERED, *UNREGISTERED)}


@pytest.fixture(scope="module")
def registered(tenants: Tenants, tracks: dict[int, np.ndarray], media_dir: Path) -> dict[int, str]:
    work_ids = {}
    for seed, codec in REGISTERED.items():
        data, name = _file(tracks[seed], codec, media_dir, f"track{seed}")
        work_ids[seed] = tenants.label.register_work(
            data,
            name,
            {"title": f"Track {seed}", "kind": "work", "policy": "block",
             "identifiers": {"isrc": f"GBAAA26{seed:05d}"}},
        )  # fmt: skip
    for work_id in work_ids.values():
        work = tenants.label.wait_work(work_id)
        assert work["status"] == "indexed", work
        assert work["media_type"] == "audio"
    return work_ids


# (seed, start in the track, clip length, upload format)
EXCERPTS = [
    (201, 3.0, 10.0, "opus"),
    (202, 17.5, 10.0, "m4a"),
    (203, 25.0, 10.0, "mp3_64k"),
    (204, 8.0, 10.0, "flac"),
    (201, 28.0, 5.0, "mp3"),
]


def test_excerpts_are_found_with_their_segment(
    tenants: Tenants, tracks: dict[int, np.ndarray], registered: dict[int, str], media_dir: Path
) -> None:
    uploads = []
    for i, (seed, start, length, codec) in enumerate(EXCERPTS):
        clip = audio.excerpt(tracks[seed], SR, start, length)
        data, name = _file(clip, codec, media_dir, f"clip{i}")
        uploads.append((seed, start, length, tenants.tube.submit_upload(data, name)))
    for seed, start, length, upload_id in uploads:
        upload = tenants.tube.wait_upload(upload_id)
        assert upload["status"] == "matched", (seed, start, upload)
        assert upload["media_type"] == "audio"
        best = upload["matches"][0]
        assert best["work_id"] == registered[seed]
        assert best["signal"]
        segments = best["segments"]
        assert segments, best
        # The clip is one stretch of the work: its segments span it to within a second.
        q0 = min(s["query_start"] for s in segments)
        q1 = max(s["query_end"] for s in segments)
        r0 = min(s["ref_start"] for s in segments)
        r1 = max(s["ref_end"] for s in segments)
        assert abs(q0 - 0.0) <= 1.0 and abs(q1 - length) <= 1.0, segments
        assert abs(r0 - start) <= 1.0 and abs(r1 - (start + length)) <= 1.0, segments
        report = tenants.label_enforcement.report(upload["report_id"])
        assert report["work"]["identifiers"]["isrc"].startswith("GBAAA26")


def test_unregistered_music_matches_nothing(
    tenants: Tenants, tracks: dict[int, np.ndarray], registered: dict[int, str], media_dir: Path
) -> None:
    ids = []
    for seed in UNREGISTERED:
        clip = audio.excerpt(tracks[seed], SR, 5.0, 15.0)
        data, name = _file(clip, "mp3", media_dir, f"stranger{seed}")
        ids.append(tenants.tube.submit_upload(data, name))
    for upload_id in ids:
        upload = tenants.tube.wait_upload(upload_id)
        assert upload["status"] == "no_match", upload["matches"]


def test_a_mashup_is_matched_to_both_works(
    tenants: Tenants, tracks: dict[int, np.ndarray], registered: dict[int, str], media_dir: Path
) -> None:
    a = audio.excerpt(tracks[202], SR, 4.0, 12.0)
    b = audio.excerpt(tracks[204], SR, 20.0, 12.0)
    data, name = _file(audio.mashup(a, b, SR), "ogg", media_dir, "mashup")
    upload = tenants.tube.wait_upload(tenants.tube.submit_upload(data, name))
    assert upload["status"] == "matched"
    found = {m["work_id"]: m for m in upload["matches"]}
    assert set(found) == {registered[202], registered[204]}
    first, second = found[registered[202]]["segments"], found[registered[204]]["segments"]
    assert abs(min(s["ref_start"] for s in first) - 4.0) <= 1.0
    assert abs(min(s["query_start"] for s in second) - 11.5) <= 1.0
    assert abs(min(s["ref_start"] for s in second) - 20.0) <= 1.0
    assert len(upload["reports"]) == 2


def test_too_short_and_undecodable_audio_fail_with_a_reason(
    tenants: Tenants, tracks: dict[int, np.ndarray], media_dir: Path
) -> None:
    data, name = _file(audio.excerpt(tracks[301], SR, 0.0, 1.0), "wav", media_dir, "short")
    short = tenants.tube.wait_upload(tenants.tube.submit_upload(data, name))
    assert short["status"] == "failed"
    assert short["error"]["code"] == "audio_too_short"
    garbage = b"fLaC" + bytes(range(256)) * 40
    broken = tenants.tube.wait_upload(tenants.tube.submit_upload(garbage, "broken.flac"))
    assert broken["status"] == "failed"
    assert broken["error"]["code"] == "undecodable_audio"
