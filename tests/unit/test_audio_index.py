"""AudioIndex: excerpts found with the right segment, unregistered audio not found, mashups,
remove/replace, thread safety and compaction. Synthetic music from tests/fixtures/audio.py."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from contentmatch_fingerprint.signals.audio import fingerprint_audio
from contentmatch_match.index.audio import AudioIndex
from tests.fixtures.audio import (
    echo,
    excerpt,
    make_track,
    mashup,
    mp3_64k,
    pink_noise_snr,
    telephone_band,
    tempo,
    write_wav,
)

pytestmark = pytest.mark.unit

SR = 22050
N_TRACKS = 5
TRACK_S = 40.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audio-index")
    tracks, fps = {}, {}
    for seed in range(N_TRACKS):
        x = make_track(seed, TRACK_S, SR)
        p = tmp / f"track{seed}.wav"
        write_wav(p, x, SR)
        tracks[seed] = x
        fps[seed] = fingerprint_audio(str(p))
    return tmp, tracks, fps


@pytest.fixture()
def index(corpus):
    _, _, fps = corpus
    idx = AudioIndex()
    for seed, fp in fps.items():
        idx.add(f"work-{seed}", fp)
    return idx


def _fp(tmp, samples, name="q.wav"):
    p = tmp / name
    write_wav(p, samples, SR)
    return fingerprint_audio(str(p))


def _assert_segment(seg, q0, q1, r0, r1, tol=1.0):
    assert abs(seg.query_start - q0) <= tol, seg
    assert abs(seg.query_end - q1) <= tol, seg
    assert abs(seg.ref_start - r0) <= tol, seg
    assert abs(seg.ref_end - r1) <= tol, seg


@pytest.mark.parametrize(("seed", "start"), [(0, 0.0), (1, 7.3), (2, 15.0), (3, 29.9), (4, 21.6)])
def test_ten_second_excerpt_is_found_with_its_segment(corpus, index, seed, start):
    tmp, tracks, _ = corpus
    hits = index.search(_fp(tmp, excerpt(tracks[seed], SR, start, 10.0)))
    assert hits and hits[0].work_id == f"work-{seed}"
    assert [h.work_id for h in hits] == [f"work-{seed}"]
    h = hits[0]
    assert 0.5 < h.score <= 1.0
    assert h.signal == "chromaprint"
    assert h.distance is not None and h.distance < 0.15
    assert len(h.segments) == 1
    _assert_segment(h.segments[0], 0.0, 10.0, start, start + 10.0)


def test_five_second_excerpt(corpus, index):
    tmp, tracks, _ = corpus
    for seed, start in ((1, 3.0), (3, 33.0)):
        hits = index.search(_fp(tmp, excerpt(tracks[seed], SR, start, 5.0)))
        assert [h.work_id for h in hits] == [f"work-{seed}"]
        _assert_segment(hits[0].segments[0], 0.0, 5.0, start, start + 5.0)


def test_unregistered_tracks_are_not_found(corpus, index):
    tmp, _, _ = corpus
    for seed in range(100, 106):
        hits = index.search(_fp(tmp, excerpt(make_track(seed, 20.0, SR), SR, 4.0, 10.0)))
        assert hits == [], (seed, hits)


def test_mashup_gives_both_works_with_their_segments(corpus, index):
    tmp, tracks, _ = corpus
    a = excerpt(tracks[1], SR, 5.0, 12.0)
    b = excerpt(tracks[3], SR, 20.0, 12.0)
    q = mashup(a, b, SR, crossfade_s=0.5)  # b starts at 11.5 s, joint at ~11.75 s
    hits = index.search(_fp(tmp, q))
    by = {h.work_id: h for h in hits}
    assert set(by) == {"work-1", "work-3"}
    sa, sb = by["work-1"].segments, by["work-3"].segments
    assert len(sa) == 1 and len(sb) == 1
    _assert_segment(sa[0], 0.0, 11.75, 5.0, 16.75)
    _assert_segment(sb[0], 11.75, 23.5, 20.25, 32.0)


def test_mashup_second_work_does_not_start_inside_the_first(tmp_path):
    """The e2e mashup (tests/e2e/test_audio_reports.py): 16 s of A from 6 s, then 16 s of B from
    12 s, 0.5 s crossfade. A stray landmark hash agreeing with B's alignment 4 s inside A's part
    used to stretch B's segment back to ~11.3 s of the upload."""
    seeds, track_s = (8101, 8102, 8103), 36.0
    tracks = {seed: make_track(seed, track_s, SR) for seed in seeds}
    idx = AudioIndex()
    for seed, x in tracks.items():
        idx.add(f"work-{seed}", _fp(tmp_path, x, f"track{seed}.wav"))
    q = mashup(
        excerpt(tracks[8101], SR, 6.0, 16.0), excerpt(tracks[8102], SR, 12.0, 16.0), SR, 0.5
    )  # b's first sample at 15.5 s, joint at 15.75 s
    by = {h.work_id: h for h in idx.search(_fp(tmp_path, q))}
    assert set(by) == {"work-8101", "work-8102"}
    (sa,) = by["work-8101"].segments
    (sb,) = by["work-8102"].segments
    _assert_segment(sa, 0.0, 15.75, 6.0, 21.75)
    _assert_segment(sb, 15.75, 31.5, 12.25, 28.0)


@pytest.mark.parametrize(
    "degrade",
    [
        lambda x: mp3_64k(x, SR),
        lambda x: pink_noise_snr(x, 10.0, seed=3),
        lambda x: telephone_band(x, SR),
        lambda x: echo(x, SR),
        lambda x: tempo(x, SR, 1.03),
    ],
    ids=["mp3_64k", "pink10db", "telephone", "echo", "tempo+3%"],
)
def test_degraded_excerpts_are_found(corpus, index, degrade):
    tmp, tracks, _ = corpus
    start = 12.0
    hits = index.search(_fp(tmp, degrade(excerpt(tracks[2], SR, start, 10.0))))
    assert hits and hits[0].work_id == "work-2", hits
    seg = hits[0].segments[0]
    assert abs(seg.ref_start - (start + seg.query_start)) <= 1.0, seg


def test_remove_and_replace(corpus, index):
    tmp, tracks, fps = corpus
    q = _fp(tmp, excerpt(tracks[4], SR, 10.0, 10.0))
    assert index.search(q)[0].work_id == "work-4"
    assert len(index) == N_TRACKS
    index.remove("work-4")
    index.remove("never-added")  # ignored
    assert len(index) == N_TRACKS - 1
    assert index.search(q) == []
    # replace work-0's content with track 4: the id now answers for the new content only
    index.add("work-0", fps[4])
    assert len(index) == N_TRACKS - 1
    assert [h.work_id for h in index.search(q)] == ["work-0"]
    assert index.search(_fp(tmp, excerpt(tracks[0], SR, 10.0, 10.0))) == []
    # idempotent re-add
    index.add("work-0", fps[4])
    assert len(index) == N_TRACKS - 1
    assert [h.work_id for h in index.search(q)] == ["work-0"]


def test_compaction_keeps_results(corpus):
    tmp, tracks, fps = corpus
    idx = AudioIndex()
    for round_ in range(4):  # many removes trigger compaction and renumbering
        for seed, fp in fps.items():
            idx.add(f"w{seed}", fp)
        if round_ < 3:
            for seed in range(N_TRACKS - 1):
                idx.remove(f"w{seed}")
    assert len(idx) == N_TRACKS
    for seed in (0, 4):
        hits = idx.search(_fp(tmp, excerpt(tracks[seed], SR, 20.0, 10.0)))
        assert [h.work_id for h in hits] == [f"w{seed}"]
        _assert_segment(hits[0].segments[0], 0.0, 10.0, 20.0, 30.0)
    assert idx.memory_bytes() > 0


def test_concurrent_adds_and_searches(corpus):
    tmp, tracks, fps = corpus
    idx = AudioIndex()
    idx.add("w0", fps[0])
    q = _fp(tmp, excerpt(tracks[0], SR, 5.0, 10.0))
    errors: list[BaseException] = []

    def writer():
        try:
            for k in range(30):
                seed = 1 + k % (N_TRACKS - 1)
                idx.add(f"w{seed}", fps[seed])
                if k % 3 == 0:
                    idx.remove(f"w{seed}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader():
        try:
            for _ in range(30):
                hits = idx.search(q)
                assert hits and hits[0].work_id == "w0"
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_empty_index_and_limit(corpus):
    tmp, tracks, fps = corpus
    idx = AudioIndex()
    assert idx.search(fps[0]) == []
    idx.add("a", fps[0])
    idx.add("b", fps[0])  # the same recording registered twice: both are reported
    hits = idx.search(_fp(tmp, excerpt(tracks[0], SR, 3.0, 10.0)))
    assert {h.work_id for h in hits} == {"a", "b"}
    assert len(idx.search(_fp(tmp, excerpt(tracks[0], SR, 3.0, 10.0)), limit=1)) == 1
    assert np.isfinite(hits[0].score)
