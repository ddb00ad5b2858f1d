"""Music under a louder foreground: the background peaks (fingerprint) and their index (match)."""

from __future__ import annotations

import numpy as np
import pytest

from contentmatch_fingerprint.signals.audio import fingerprint_audio
from contentmatch_match.index.audio import AudioIndex
from contentmatch_match.index.audio_background import decode
from contentmatch_shared.peaks_payload import (
    BG_PEAKS_KEY,
    decode_background_peaks,
    encode_background_peaks,
)
from tests.fixtures.audio import make_track, mix_under, speech_like, write_wav

pytestmark = pytest.mark.unit
SR = 22050


def _fp(tmp_path, name: str, x: np.ndarray):
    p = tmp_path / f"{name}.wav"
    write_wav(p, x, SR)
    return fingerprint_audio(str(p))


def test_payload_round_trip():
    t = np.array([0, 0, 3, 70_000])
    f = np.array([5, 200, 0, 251])
    flags = np.array([1, 2, 3, 2], np.uint8)
    got = decode_background_peaks(encode_background_peaks(t, f, flags))
    assert [a.tolist() for a in got] == [t.tolist(), f.tolist(), flags.tolist()]


def test_reference_peaks_are_few_query_peaks_dense_and_silence_has_none(tmp_path):
    x = make_track(8101, 12.0, SR)
    x[round(6 * SR) :] = 0.0
    peaks = decode(_fp(tmp_path, "half-silent", x).extra)
    assert peaks is not None
    sound = peaks.frames < 5.5 * 43
    n_ref = int(peaks.reference[sound].sum())
    assert 4 * 20 <= n_ref <= 5.5 * 28 + 8  # the budget: 28 a second
    assert (~peaks.reference[sound]).sum() > n_ref  # query peaks: many more
    assert not (peaks.frames > 6.5 * 43).any()  # digital silence: none


def test_music_10_db_under_speech_is_found_with_its_offset(tmp_path):
    index = AudioIndex()
    songs = {s: make_track(s, 40.0, SR) for s in (8102, 8103, 8104)}
    for s, x in songs.items():
        index.add(f"w{s}", _fp(tmp_path, f"w{s}", x))
    clip = songs[8103][round(17 * SR) : round(27 * SR)]
    q = _fp(tmp_path, "q", mix_under(clip, speech_like(10.0, SR, 8105), 10.0))
    assert q.extra.get(BG_PEAKS_KEY)
    hits = index.search(q)
    assert [h.work_id for h in hits] == ["w8103"]
    assert hits[0].signal == "background"
    seg = hits[0].segments[0]
    assert abs(seg.ref_start - seg.query_start - 17.0) < 0.1
    assert seg.query_end - seg.query_start >= 6.0
    # an unregistered song under the same speech is not found; nor is the speech alone
    other = make_track(8106, 12.0, SR)[: round(10 * SR)]
    assert (
        index.search(_fp(tmp_path, "n", mix_under(other, speech_like(10.0, SR, 8105), 10.0))) == []
    )
    assert index.search(_fp(tmp_path, "s", speech_like(10.0, SR, 8105))) == []
    # removal and compaction keep the other works searchable
    index.remove("w8102")
    index.remove("w8104")
    index._compact()
    assert [h.work_id for h in index.search(q)] == ["w8103"]
