"""Audio everyday edits end to end, through HTTP only: a sped-up excerpt, a pitch-shifted one and
music under speech are each found with their segments (and the time scale / pitch shift in the
evidence); a cover of a registered song, a fanfare decaying into digital silence and another game
track built on the same loop as a registered one are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import Tenants
from tests.fixtures import audio

SR = audio.DEFAULT_SR
SONGS = {411: "flac", 412: "ogg", 8110: "mp3"}  # seed -> registered format
QUIET_INTRO = 414  # a work that opens on near-silence
LOOP = 8111  # a work built on a loop that another (unregistered) track uses too


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
    return tmp_path_factory.mktemp("audio-edits-e2e")


@pytest.fixture(scope="module")
def songs() -> dict[int, np.ndarray]:
    out = {s: audio.make_track(s, 36.0, SR) for s in SONGS}
    out[QUIET_INTRO] = audio.quiet_intro_track(QUIET_INTRO, 30.0, SR, intro_s=8.0)
    out[LOOP] = audio.shared_loop_tracks(LOOP, 36.0, SR)[0]
    return out


@pytest.fixture(scope="module")
def registered(tenants: Tenants, songs: dict[int, np.ndarray], media_dir: Path) -> dict[int, str]:
    ids = {}
    for seed, samples in songs.items():
        data, name = _file(samples, SONGS.get(seed, "wav"), media_dir, f"song{seed}")
        ids[seed] = tenants.label.register_work(
            data, name, {"title": f"Song {seed}", "kind": "work", "policy": "monetize"}
        )
    for work_id in ids.values():
        assert tenants.label.wait_work(work_id)["status"] == "indexed"
    return ids


def _assert_found(upload: dict, work_id: str, ref_start: float, scale: float) -> dict:
    assert upload["status"] == "matched", upload
    best = upload["matches"][0]
    assert best["work_id"] == work_id, upload["matches"]
    segs = best["segments"]
    assert segs, best
    s = max(segs, key=lambda s: s["query_end"] - s["query_start"])
    q_len = s["query_end"] - s["query_start"]
    assert q_len >= 5.0, segs
    # the reference time at the query's start, and the reference span is the query's x scale
    r0 = s["ref_start"] - scale * s["query_start"]
    assert abs(r0 - ref_start) <= 1.0, segs
    assert abs((s["ref_end"] - s["ref_start"]) / q_len - scale) <= 0.05, segs
    return best


def test_sped_up_and_pitch_shifted_excerpts_are_found(
    tenants: Tenants, songs: dict[int, np.ndarray], registered: dict[int, str], media_dir: Path
) -> None:
    cases = {
        # name: (seed, start, clip, format, time scale)
        "sped-up": (411, 6.0, audio.speed(audio.excerpt(songs[411], SR, 6.0, 11.0), SR, 1.08),
                    "m4a", 1.08),
        "pitch": (412, 14.0, audio.pitch_shift(audio.excerpt(songs[412], SR, 14.0, 10.0), SR, 2.0),
                  "mp3", 1.0),
    }  # fmt: skip
    uploads = {}
    for name, (_seed, _start, clip, codec, _scale) in cases.items():
        data, fname = _file(clip, codec, media_dir, f"edit-{name}")
        uploads[name] = tenants.tube.submit_upload(data, fname)
    found = {}
    for name, (seed, start, _clip, _codec, scale) in cases.items():
        upload = tenants.tube.wait_upload(uploads[name])
        found[name] = _assert_found(upload, registered[seed], start, scale)
    assert abs(float(found["sped-up"]["evidence"]["time_scale"]) - 1.08) <= 0.01
    assert abs(float(found["sped-up"]["evidence"]["pitch_shift_semitones"]) - 1.33) <= 0.25
    assert abs(float(found["pitch"]["evidence"]["pitch_shift_semitones"]) - 2.0) <= 0.25


def test_cover_and_fanfare_into_silence_match_nothing(
    tenants: Tenants, songs: dict[int, np.ndarray], registered: dict[int, str], media_dir: Path
) -> None:
    cover = audio.excerpt(audio.make_track(412, 40.0, SR, cover=1), SR, 10.0, 12.0)
    fanfare = audio.fanfare_into_silence(5, 10.0, SR)
    ids = []
    for name, clip in (("cover", cover), ("fanfare", fanfare)):
        data, fname = _file(clip, "mp3", media_dir, name)
        ids.append(tenants.tube.submit_upload(data, fname))
    for upload_id in ids:
        upload = tenants.tube.wait_upload(upload_id)
        assert upload["status"] == "no_match", upload["matches"]


def test_music_under_speech_is_found_with_its_segments(
    tenants: Tenants, songs: dict[int, np.ndarray], registered: dict[int, str], media_dir: Path
) -> None:
    clip = audio.excerpt(songs[8110], SR, 13.0, 10.0)
    vlog = audio.mix_under(clip, audio.speech_like(10.0, SR, 8112), 10.0)
    data, fname = _file(vlog, "m4a", media_dir, "vlog")
    upload = tenants.tube.wait_upload(tenants.tube.submit_upload(data, fname))
    best = _assert_found(upload, registered[8110], 13.0, 1.0)
    assert "background" in best["evidence"]["signals"], best


def test_another_track_on_the_same_loop_matches_nothing(
    tenants: Tenants, registered: dict[int, str], media_dir: Path
) -> None:
    other = audio.excerpt(audio.shared_loop_tracks(LOOP, 36.0, SR)[1], SR, 9.0, 10.0)
    data, fname = _file(other, "mp3", media_dir, "same-loop")
    upload = tenants.tube.wait_upload(tenants.tube.submit_upload(data, fname))
    assert upload["status"] == "no_match", upload["matches"]
