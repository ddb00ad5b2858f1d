"""The wire format of the log-frequency spectral peaks inside ``AudioFingerprint.extra["peaks"]``.

Written by the fingerprint service (``signals/audio_peaks.py``), read by the match index
(``index/audio_shift.py``): both sides use this one definition.

``base64(zlib(frame deltas u32 LE[n] + log-frequency u16 LE[n]))``: frames are STFT frames at
``PK_FRAME_RATE`` per second, time-sorted; the log-frequency is in 1/``PK_UNITS_PER_SEMITONE``
semitone above the axis' lowest frequency.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np

PK_FRAME_RATE = 11025 / 256  # STFT frames per second
PK_UNITS_PER_SEMITONE = 64
PEAKS_KEY = "peaks"  # key in AudioFingerprint.extra


def encode_peaks(frames: np.ndarray, semitones: np.ndarray) -> str:
    frames = np.asarray(frames, dtype=np.int64)
    deltas = np.diff(frames, prepend=0).astype("<u4")
    units = np.clip(np.rint(np.asarray(semitones) * PK_UNITS_PER_SEMITONE), 0, 65535).astype("<u2")
    return base64.b64encode(zlib.compress(deltas.tobytes() + units.tobytes(), 6)).decode("ascii")


def decode_peaks(payload: str) -> tuple[np.ndarray, np.ndarray]:
    """(frames int64, semitones float32)."""
    raw = zlib.decompress(base64.b64decode(payload))
    n = len(raw) // 6
    frames = np.cumsum(np.frombuffer(raw[: 4 * n], dtype="<u4").astype(np.int64))
    semis = np.frombuffer(raw[4 * n : 6 * n], dtype="<u2").astype(np.float32)
    return frames, semis / np.float32(PK_UNITS_PER_SEMITONE)


# Dense landmark peaks (``extra["landmark_peaks"]``): the landmark STFT's local maxima over a
# smaller neighbourhood and at a higher density than the landmarks themselves, so that music under
# a louder foreground still has its peaks among them. The match service pairs them into landmark
# hashes on the query side (background music). base64(zlib(frame deltas u32 LE[n] + bin u8[n])).
LANDMARK_PEAKS_KEY = "landmark_peaks"


def encode_bin_peaks(frames: np.ndarray, bins: np.ndarray) -> str:
    frames = np.asarray(frames, dtype=np.int64)
    deltas = np.diff(frames, prepend=0).astype("<u4")
    raw = deltas.tobytes() + np.clip(np.asarray(bins), 0, 255).astype(np.uint8).tobytes()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def decode_bin_peaks(payload: str) -> tuple[np.ndarray, np.ndarray]:
    """(frames int64, landmark bins int64), time-sorted."""
    raw = zlib.decompress(base64.b64decode(payload))
    n = len(raw) // 5
    frames = np.cumsum(np.frombuffer(raw[: 4 * n], dtype="<u4").astype(np.int64))
    return frames, np.frombuffer(raw[4 * n : 5 * n], dtype=np.uint8).astype(np.int64)
