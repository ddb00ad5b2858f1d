"""The background-music pass pairs the dense peaks exactly like the fingerprint service pairs the
landmark peaks, so that its query hashes can meet the references' landmark hashes."""

from __future__ import annotations

import numpy as np
import pytest

from contentmatch_fingerprint.signals.audio import LM_FANOUT, _pair_peaks, fingerprint_audio
from contentmatch_match.index.audio import decode_landmarks
from contentmatch_match.index.audio_background import dense_landmarks, pair_peaks
from contentmatch_shared.peaks_payload import LANDMARK_PEAKS_KEY, decode_bin_peaks
from tests.fixtures.audio import make_track, write_wav

pytestmark = pytest.mark.unit


def test_pairing_equals_the_fingerprint_services():
    rng = np.random.default_rng(2)
    # 5 peaks per 43 frames: the landmarks' density control (10 a second) keeps them all
    t = np.sort(np.concatenate([rng.choice(np.arange(s * 43, s * 43 + 43), 5, replace=False)
                                for s in range(60)]))  # fmt: skip
    f = rng.integers(0, 126, len(t))
    ours = pair_peaks(t, f, LM_FANOUT)
    theirs = _pair_peaks(t, f, np.ones(len(t)))
    assert np.array_equal(np.sort(ours[0]), np.sort(theirs[0]))
    assert np.array_equal(ours[1], theirs[1])


def test_dense_peaks_contain_the_landmark_pairs(tmp_path):
    p = tmp_path / "t.wav"
    write_wav(p, make_track(5, 15.0), 22050)
    fp = fingerprint_audio(str(p))
    ref = set(zip(*(a.tolist() for a in decode_landmarks(fp.extra["landmarks"])), strict=True))
    dense = dense_landmarks(fp.extra)
    assert dense is not None
    got = set(zip(*(a.tolist() for a in dense), strict=True))
    assert len(ref & got) >= 0.85 * len(ref)
    frames, _ = decode_bin_peaks(fp.extra[LANDMARK_PEAKS_KEY])
    assert np.all(np.diff(frames) >= 0)
