"""Pitch- and speed-invariant triplets: payload, invariance of the keys, and the index finding
sped-up, pitch-shifted and time-stretched excerpts with their time scale, pitch and segments."""

from __future__ import annotations

import numpy as np
import pytest

from contentmatch_fingerprint.signals.audio import fingerprint_audio
from contentmatch_match.index.audio import AudioIndex
from contentmatch_match.index.audio_shift import reference_keys, triplets
from contentmatch_shared.peaks_payload import decode_peaks, encode_peaks
from tests.fixtures.audio import (
    excerpt,
    make_track,
    pitch_shift,
    speed,
    time_stretch,
    write_wav,
)

pytestmark = pytest.mark.unit

SR = 22050
N_TRACKS = 4


def test_peaks_payload_round_trip():
    frames = np.array([0, 3, 3, 40, 1000, 70000])
    semis = np.array([0.0, 12.5, 30.25, 1.015625, 50.0, 7.5], np.float32)
    f, s = decode_peaks(encode_peaks(frames, semis))
    assert f.tolist() == frames.tolist()
    assert np.allclose(s, semis, atol=1 / 128)


def test_keys_do_not_change_under_pitch_shift_and_time_scaling():
    rng = np.random.default_rng(3)
    frames = np.sort(rng.choice(np.arange(0, 4000, 3), 400, replace=False))
    # peaks on a semitone grid plus a little estimation noise that stays inside the quantisation
    semis = rng.integers(0, 40, 400).astype(np.float32) + 10 + rng.uniform(-0.1, 0.1, 400)
    base = triplets(frames, semis.astype(np.float32))
    keys = set(reference_keys(base).tolist())
    # 2.4 semitones up and 10 % faster (integer frames rounded like the STFT does)
    moved = triplets(np.rint(frames / 1.1).astype(np.int64), (semis + 2.4).astype(np.float32))
    same = np.isin(reference_keys(moved), list(keys)).mean()
    assert same > 0.6, same


def _fp(tmp, samples, name="q.wav"):
    p = tmp / name
    write_wav(p, samples, SR)
    return fingerprint_audio(str(p))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audio-shift")
    tracks = {s: make_track(100 + s, 36.0, SR) for s in range(N_TRACKS)}
    index = AudioIndex()
    for s, x in tracks.items():
        index.add(f"work-{s}", _fp(tmp, x, f"ref{s}.wav"))
    return tmp, tracks, index


CASES = [
    # (name, transform, seconds read from the original, time scale, pitch shift)
    ("speed +10 %", lambda x: speed(x, SR, 1.10), 11.0, 1.10, 1.65),
    ("speed -10 %", lambda x: speed(x, SR, 0.90), 9.0, 0.90, -1.82),
    ("speed +3 %", lambda x: speed(x, SR, 1.03), 10.3, 1.03, 0.51),
    ("pitch +2 semitones", lambda x: pitch_shift(x, SR, 2.0), 10.0, 1.0, 2.0),
    ("pitch -2 semitones", lambda x: pitch_shift(x, SR, -2.0), 10.0, 1.0, -2.0),
    ("time-stretch +10 %", lambda x: time_stretch(x, SR, 1.10), 11.0, 1.10, 0.0),
    ("time-stretch -10 %", lambda x: time_stretch(x, SR, 0.90), 9.0, 0.90, 0.0),
]


@pytest.mark.parametrize(
    ("name", "edit", "read_s", "scale", "pitch"), CASES, ids=[c[0] for c in CASES]
)
def test_edited_excerpt_is_found_with_time_scale_pitch_and_segment(
    corpus, name, edit, read_s, scale, pitch
):
    tmp, tracks, index = corpus
    seed, start = len(name) % N_TRACKS, 9.0
    clip = edit(excerpt(tracks[seed], SR, start, read_s))
    hits = index.search(_fp(tmp, clip))
    assert hits and hits[0].work_id == f"work-{seed}", (name, hits)
    best = hits[0]
    assert abs(float(best.evidence["time_scale"]) - scale) <= 0.01, best.evidence
    assert abs(float(best.evidence.get("pitch_shift_semitones", 0.0)) - pitch) <= 0.25, (
        best.evidence
    )
    seg = best.segments[0]
    q_len = len(clip) / SR
    assert seg.query_start <= 1.0 and seg.query_end >= q_len - 1.0, seg
    # the reference segment is longer or shorter than the query's by the time scale
    assert abs(seg.ref_start - (start + scale * seg.query_start)) <= 0.6, seg
    ref_len, query_len = seg.ref_end - seg.ref_start, seg.query_end - seg.query_start
    assert abs(ref_len / query_len - scale) <= 0.03, seg


def test_plain_excerpt_keeps_chromaprint_alignment_and_no_shift(corpus):
    tmp, tracks, index = corpus
    hits = index.search(_fp(tmp, excerpt(tracks[1], SR, 20.0, 10.0)))
    assert hits[0].work_id == "work-1"
    assert hits[0].signal == "chromaprint"
    assert abs(float(hits[0].evidence["time_scale"]) - 1.0) <= 0.01
    assert abs(float(hits[0].evidence.get("pitch_shift_semitones", 0.0))) <= 0.1


def test_covers_and_unrelated_music_are_not_found(corpus):
    tmp, _, index = corpus
    for s in range(N_TRACKS):
        cover = make_track(100 + s, 40.0, SR, cover=1)
        assert index.search(_fp(tmp, excerpt(cover, SR, 10.0, 10.0))) == [], s
        stranger = make_track(900 + s, 12.0, SR)
        for edit in (lambda x: x, lambda x: speed(x, SR, 1.08), lambda x: pitch_shift(x, SR, 2.0)):
            assert index.search(_fp(tmp, edit(stranger)[: 10 * SR])) == [], s


def test_remove_and_compaction_keep_the_triplets_consistent(corpus):
    tmp, tracks, _ = corpus
    index = AudioIndex()
    fps = {s: _fp(tmp, x, f"c{s}.wav") for s, x in tracks.items()}
    for s, fp in fps.items():
        index.add(f"work-{s}", fp)
    for s in range(N_TRACKS - 1):  # enough dead entries to compact
        index.remove(f"work-{s}")
    index.add("work-0", fps[0])
    clip = _fp(tmp, speed(excerpt(tracks[N_TRACKS - 1], SR, 5.0, 11.0), SR, 1.1))
    assert [h.work_id for h in index.search(clip)] == [f"work-{N_TRACKS - 1}"]
    clip0 = _fp(tmp, speed(excerpt(tracks[0], SR, 5.0, 11.0), SR, 1.1))
    assert [h.work_id for h in index.search(clip0)] == ["work-0"]
