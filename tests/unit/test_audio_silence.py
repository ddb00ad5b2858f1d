"""Silence, near-silence and one held frame carry no evidence, in queries and in references."""

from __future__ import annotations

import numpy as np
import pytest

from contentmatch_fingerprint.signals.audio import decode_items, fingerprint_audio
from contentmatch_match.index.audio import AudioIndex, static_items
from tests.fixtures.audio import (
    excerpt,
    fanfare_into_silence,
    make_track,
    quiet_intro_track,
    write_wav,
)

pytestmark = pytest.mark.unit

SR = 22050


def _held_chord(f0: float, seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    x = sum(a * np.sin(2 * np.pi * f0 * k * t) for k, a in ((1, 0.3), (1.25, 0.2), (1.5, 0.2)))
    return np.asarray(x, dtype=np.float32)


def _fp(tmp, samples, name):
    p = tmp / name
    write_wav(p, samples, SR)
    return fingerprint_audio(str(p))


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """Works with near-silent intros of several lengths and one that opens on a held chord."""
    tmp = tmp_path_factory.mktemp("audio-silence")
    tracks = {s: quiet_intro_track(s, 34.0, SR, intro_s=4.0 + 2 * s) for s in range(3)}
    tracks[3] = np.concatenate([_held_chord(440.0, 8.0), make_track(3, 26.0, SR)])
    index = AudioIndex()
    for s, x in tracks.items():
        index.add(f"work-{s}", _fp(tmp, x, f"ref{s}.wav"))
    return tmp, tracks, index


def test_static_items_flag_silence_not_music(tmp_path):
    music = decode_items(_fp(tmp_path, make_track(7, 20.0, SR), "m.wav").chromaprint)
    assert not static_items(music).any()
    silent_end = decode_items(_fp(tmp_path, fanfare_into_silence(1), "f.wav").chromaprint)
    flags = static_items(silent_end)
    assert flags[-10:].all() and not flags[:3].any()


@pytest.mark.parametrize("seed", range(4))
def test_fanfare_decaying_into_silence_matches_nothing(refs, seed):
    tmp, _, index = refs
    assert index.search(_fp(tmp, fanfare_into_silence(seed), f"q{seed}.wav")) == []


def test_a_held_chord_matches_nothing(refs):
    tmp, _, index = refs
    assert index.search(_fp(tmp, _held_chord(440.0, 10.0), "held.wav")) == []
    assert index.search(_fp(tmp, _held_chord(440.0, 4.0), "held-short.wav")) == []


def test_music_after_a_quiet_intro_is_still_found(refs):
    tmp, tracks, index = refs
    for s in range(4):
        hits = index.search(_fp(tmp, excerpt(tracks[s], SR, 12.0, 10.0), f"x{s}.wav"))
        assert hits and hits[0].work_id == f"work-{s}", hits
        seg = hits[0].segments[0]
        assert abs(seg.ref_start - 12.0) <= 1.0, seg
