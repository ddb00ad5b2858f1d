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


# Background peaks (``extra["bg_peaks"]``, fingerprint ``signals/audio_background.py``, match
# ``index/audio_background.py``): frame and linear STFT bin of each peak, with flags saying whether
# it is a reference peak (the music's strongest: what the index stores), a query peak (a dense
# picking of the whitened spectrum: what a query is searched with), or both.
# base64(zlib(frame deltas u32 LE[n] + bin u8[n] + flags u8[n])), time-sorted.
BG_PEAKS_KEY = "bg_peaks"
BG_REFERENCE = 1
BG_QUERY = 2


def encode_background_peaks(frames: np.ndarray, bins: np.ndarray, flags: np.ndarray) -> str:
    frames = np.asarray(frames, dtype=np.int64)
    deltas = np.diff(frames, prepend=0).astype("<u4")
    raw = (
        deltas.tobytes()
        + np.clip(np.asarray(bins), 0, 255).astype(np.uint8).tobytes()
        + np.asarray(flags, dtype=np.uint8).tobytes()
    )
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def decode_background_peaks(payload: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames int64, bins int64, flags uint8), time-sorted."""
    raw = zlib.decompress(base64.b64decode(payload))
    n = len(raw) // 6
    frames = np.cumsum(np.frombuffer(raw[: 4 * n], dtype="<u4").astype(np.int64))
    bins = np.frombuffer(raw[4 * n : 5 * n], dtype=np.uint8).astype(np.int64)
    return frames, bins, np.frombuffer(raw[5 * n : 6 * n], dtype=np.uint8).copy()
