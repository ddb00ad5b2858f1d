"""Audio fingerprint signal: decoding of common formats, Chromaprint items, landmarks, errors."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from contentmatch_fingerprint.signals.audio import (
    ITEM_RATE,
    decode_items,
    fingerprint_audio,
)
from contentmatch_match.index.audio import decode_landmarks
from contentmatch_shared.errors import MediaError
from contentmatch_shared.fingerprints import AudioFingerprint
from tests.fixtures.audio import encode, make_track, write_wav

pytestmark = pytest.mark.unit

SR = 22050


def _ber(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.bitwise_count(a[:n] ^ b[:n]).mean() / 32.0)


@pytest.fixture(scope="module")
def track_wav(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("audio") / "track.wav"
    write_wav(path, make_track(7, 20.0, SR), SR)
    return str(path)


def test_wav_fingerprint_has_items_duration_and_landmarks(track_wav):
    fp = fingerprint_audio(track_wav)
    assert isinstance(fp, AudioFingerprint)
    assert fp.duration_s == pytest.approx(20.0, abs=0.05)
    assert fp.item_rate == pytest.approx(ITEM_RATE)
    items = decode_items(fp.chromaprint)
    # ~8.08 items/s minus the ~2.6 s the first item needs
    assert 130 < len(items) < 165
    assert len(np.unique(items)) > 0.8 * len(items)
    hashes, frames = decode_landmarks(fp.extra["landmarks"])
    assert len(hashes) == len(frames) == fp.extra["landmark_count"]
    assert 10 * 20 < len(hashes) < 60 * 20  # density per second stays bounded
    assert np.all(np.diff(frames.astype(np.int64)) >= 0)
    # the payload survives pydantic JSON round trips (it travels in events)
    again = AudioFingerprint.model_validate_json(fp.model_dump_json())
    assert again == fp


@pytest.mark.parametrize("codec", ["flac", "mp3", "ogg", "opus", "m4a"])
def test_common_formats_decode_to_the_same_fingerprint(track_wav, tmp_path, codec):
    from tests.fixtures.audio import codec_extension

    out = tmp_path / f"t{codec_extension(codec)}"
    encode(track_wav, out, codec)
    ref = decode_items(fingerprint_audio(track_wav).chromaprint)
    fp = fingerprint_audio(str(out))
    assert fp.duration_s == pytest.approx(20.0, abs=0.15)
    items = decode_items(fp.chromaprint)
    # lossy codecs add encoder delay: compare at the best small shift
    best = min(_ber(items[s:], ref) for s in range(0, 3))
    best = min(best, *(_ber(items, ref[s:]) for s in range(0, 3)))
    assert best < 0.15, (codec, best)


def test_different_seeds_give_different_fingerprints(tmp_path):
    fps = []
    for seed in (1, 2, 3):
        p = tmp_path / f"s{seed}.wav"
        write_wav(p, make_track(seed, 12.0, SR), SR)
        fps.append(decode_items(fingerprint_audio(str(p)).chromaprint))
    for i in range(3):
        for j in range(i + 1, 3):
            assert _ber(fps[i], fps[j]) > 0.35


def test_undecodable_file_is_a_media_error(tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError) as exc:
        fingerprint_audio(str(junk))
    assert exc.value.code == "undecodable_audio"
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n" * 100)
    with pytest.raises(MediaError) as exc:
        fingerprint_audio(str(text))
    assert exc.value.code == "undecodable_audio"
    with pytest.raises(MediaError) as exc:
        fingerprint_audio(str(tmp_path / "missing.wav"))
    assert exc.value.code == "undecodable_audio"


def test_too_short_and_too_long(tmp_path):
    short = tmp_path / "short.wav"
    write_wav(short, make_track(3, 2.0, SR), SR)
    with pytest.raises(MediaError) as exc:
        fingerprint_audio(str(short))
    assert exc.value.code == "audio_too_short"
    longer = tmp_path / "long.wav"
    write_wav(longer, make_track(3, 8.0, SR), SR)
    with pytest.raises(MediaError) as exc:
        fingerprint_audio(str(longer), max_duration_s=5.0)
    assert exc.value.code == "audio_too_long"
    assert fingerprint_audio(str(longer), max_duration_s=10.0).duration_s == pytest.approx(
        8.0, abs=0.05
    )


def test_runs_in_a_process_pool_and_errors_cross_it(track_wav, tmp_path):
    pickle.dumps(fingerprint_audio)
    short = tmp_path / "short.wav"
    write_wav(short, make_track(4, 1.0, SR), SR)
    with ProcessPoolExecutor(max_workers=1) as pool:
        fp = pool.submit(fingerprint_audio, track_wav).result(timeout=60)
        assert fp == fingerprint_audio(track_wav)
        with pytest.raises(MediaError) as exc:
            pool.submit(fingerprint_audio, str(short)).result(timeout=60)
    assert exc.value.code == "audio_too_short"
