"""Audio signal: Chromaprint raw items of any common audio format.

``fingerprint_audio`` is a top-level, picklable function: the fingerprint service runs it in a
``ProcessPoolExecutor``. It decodes with an ffmpeg subprocess straight to mono 16-bit PCM at
11025 Hz (the rate Chromaprint works at, so the library does not resample again) and streams the PCM
into libchromaprint through ctypes (the library pyacoustid's ``chromaprint`` module loads), taking
the *raw* 32-bit items (no compression / base64 round trip through the library's encoder).

Payload: ``AudioFingerprint.chromaprint`` is base64 of the little-endian uint32 items,
``item_rate`` is items per second (11025 / 1365 ~ 8.077 for the default algorithm).
"""

from __future__ import annotations

import base64
import ctypes
import os
import shutil
import subprocess
import zlib

import numpy as np

from contentmatch_shared.errors import MediaError
from contentmatch_shared.fingerprints import AudioFingerprint
from contentmatch_shared.settings import get_settings

SAMPLE_RATE = 11025  # Chromaprint's internal rate: decoding straight to it skips its resampler
ITEM_HOP = 1365  # samples between items (frame 4096, overlap 2/3) for the default algorithm
ITEM_RATE = SAMPLE_RATE / ITEM_HOP  # ~8.077 items/s
MIN_DURATION_S = 3.0  # the first item needs ~2.6 s of audio; below 3 s there is nothing to match
_CHUNK_BYTES = 1 << 17  # ~6 s of PCM per feed call
_ALGORITHM_DEFAULT = 1  # CHROMAPRINT_ALGORITHM_TEST2, what fpcalc and AcoustID use


# Landmarks (second signal, see contentmatch_match.index.audio): spectral peaks in 300-3000 Hz,
# paired into (f1, df, dt) hashes. Survive telephone band-pass and echo, where chroma does not.
LM_NFFT = 512
LM_HOP = 256  # 43.07 frames/s
LM_BIN_LO = 14  # 301 Hz
LM_BIN_HI = 140  # 3015 Hz (exclusive); 126 bins → 7 bits
LM_PEAK_T = 6  # local-maximum neighbourhood: +-6 frames (140 ms) ...
LM_PEAK_F = 6  # ... and +-6 bins (129 Hz)
LM_PEAKS_PER_S = 10  # strongest peaks kept per second
LM_FANOUT = 3  # targets per anchor
LM_DT_MAX = 63  # frames (1.46 s)
LM_DF_MAX = 31  # bins
LM_BLOCK = 4096  # STFT frames per block (bounded memory on long files)

_lib = None


def _chromaprint_lib():
    """libchromaprint via pyacoustid's loader, plus the raw-fingerprint prototypes it omits."""
    global _lib
    if _lib is None:
        import chromaprint  # pyacoustid; raises ImportError if libchromaprint is missing

        lib = chromaprint._libchromaprint
        lib.chromaprint_get_raw_fingerprint.argtypes = (
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.POINTER(ctypes.c_uint32)),
            ctypes.POINTER(ctypes.c_int),
        )
        lib.chromaprint_get_raw_fingerprint.restype = ctypes.c_int
        lib.chromaprint_feed.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int)
        lib.chromaprint_feed.restype = ctypes.c_int
        _lib = lib
    return _lib


class _Chromaprint:
    """Streaming wrapper: ``feed`` int16 mono PCM bytes, ``finish`` returns the raw uint32 items."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self._lib = _chromaprint_lib()
        self._ctx = self._lib.chromaprint_new(_ALGORITHM_DEFAULT)
        if not self._ctx or self._lib.chromaprint_start(self._ctx, sample_rate, 1) != 1:
            raise RuntimeError("chromaprint_start failed")
        self._carry = b""

    def feed(self, data: bytes) -> None:
        if self._carry:
            data = self._carry + data
        usable = len(data) & ~1  # whole int16 samples only
        self._carry = data[usable:]
        if usable and self._lib.chromaprint_feed(self._ctx, data[:usable], usable // 2) != 1:
            raise RuntimeError("chromaprint_feed failed")

    def finish(self) -> np.ndarray:
        lib = self._lib
        if lib.chromaprint_finish(self._ctx) != 1:
            raise RuntimeError("chromaprint_finish failed")
        ptr = ctypes.POINTER(ctypes.c_uint32)()
        size = ctypes.c_int()
        if (
            lib.chromaprint_get_raw_fingerprint(self._ctx, ctypes.byref(ptr), ctypes.byref(size))
            != 1
        ):
            raise RuntimeError("chromaprint_get_raw_fingerprint failed")
        try:
            n = size.value
            items = (
                np.ctypeslib.as_array(ptr, shape=(n,)).copy() if n > 0 else np.zeros(0, np.uint32)
            )
        finally:
            lib.chromaprint_dealloc(ptr)
        return items.astype(np.uint32, copy=False)

    def __del__(self) -> None:
        ctx = getattr(self, "_ctx", None)
        if ctx:
            self._lib.chromaprint_free(ctx)
            self._ctx = None


def raw_items_from_pcm(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Raw Chromaprint items of mono int16 PCM (helper for tests and benchmarks)."""
    cp = _Chromaprint(sample_rate)
    cp.feed(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return cp.finish()


def encode_items(items: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(items, dtype="<u4").tobytes()).decode("ascii")


def decode_items(payload: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(payload), dtype="<u4").astype(np.uint32)


class _LandmarkStream:
    """Incremental STFT (fed while ffmpeg is still decoding), peaks and pairs at ``finish``."""

    def __init__(self) -> None:
        import scipy.fft  # noqa: F401  (imported here: heavy, and only the worker needs it)

        self._window = np.hanning(LM_NFFT).astype(np.float32)
        self._buf = np.zeros(0, np.float32)
        self._rows: list[np.ndarray] = []

    def feed(self, pcm: np.ndarray) -> None:
        import scipy.fft

        x = np.concatenate([self._buf, np.asarray(pcm, dtype=np.float32) * np.float32(1 / 32768)])
        n = max(0, (len(x) - LM_NFFT) // LM_HOP + 1)
        if n:
            frames = np.lib.stride_tricks.as_strided(
                x, shape=(n, LM_NFFT), strides=(LM_HOP * x.strides[0], x.strides[0])
            )
            spec = np.abs(
                scipy.fft.rfft(frames * self._window, axis=1, workers=1)[:, LM_BIN_LO:LM_BIN_HI]
            )
            self._rows.append((20.0 * np.log10(spec + 1e-5)).astype(np.float16))
        self._buf = x[n * LM_HOP :].copy()

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        s_all = (
            np.concatenate(self._rows)
            if self._rows
            else np.zeros((0, LM_BIN_HI - LM_BIN_LO), np.float16)
        )
        self._rows = []
        return _landmarks_from_spectrogram(s_all)


def landmarks_from_pcm(pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hashes uint32, anchor frames uint32) of mono int16 PCM at 11025 Hz, sorted by frame."""
    st = _LandmarkStream()
    st.feed(np.asarray(pcm))
    return st.finish()


def _landmarks_from_spectrogram(s_all: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import maximum_filter, uniform_filter

    n_frames = len(s_all)
    if n_frames < 2 * LM_PEAK_T + 2:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    margin = LM_PEAK_T + 8
    peaks_t: list[np.ndarray] = []
    peaks_f: list[np.ndarray] = []
    peaks_v: list[np.ndarray] = []
    for b0 in range(0, n_frames, LM_BLOCK):
        a = max(0, b0 - margin)
        b = min(n_frames, b0 + LM_BLOCK + margin)
        s_db = s_all[a:b].astype(np.float32)
        # contrast against a wide local mean: robust to EQ / band-pass tilt and to level
        contrast = s_db - uniform_filter(s_db, size=(2 * LM_PEAK_T + 1, 33), mode="nearest")
        is_max = s_db == maximum_filter(
            s_db, size=(2 * LM_PEAK_T + 1, 2 * LM_PEAK_F + 1), mode="nearest"
        )
        is_max &= (contrast > 6.0) & (s_db > -70.0)
        t, f = np.nonzero(is_max)
        t_abs = t + a
        own = (t_abs >= b0) & (t_abs < min(n_frames, b0 + LM_BLOCK))
        peaks_t.append(t_abs[own])
        peaks_f.append(f[own])
        peaks_v.append(contrast[t[own], f[own]])
    t = np.concatenate(peaks_t)
    f = np.concatenate(peaks_f)
    v = np.concatenate(peaks_v)
    if len(t) == 0:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    # density control: the strongest LM_PEAKS_PER_S peaks of every second
    sec = (t * LM_HOP) // SAMPLE_RATE
    order = np.lexsort((-v, sec))
    t, f, sec = t[order], f[order], sec[order]
    first = np.searchsorted(sec, sec, "left")
    keep = (np.arange(len(sec)) - first) < LM_PEAKS_PER_S
    t, f = t[keep], f[keep]
    order = np.lexsort((f, t))
    t, f = t[order].astype(np.int64), f[order].astype(np.int64)
    # pair every anchor with its next LM_FANOUT peaks inside the target zone
    hashes, anchors = [], []
    taken = np.zeros(len(t), np.int64)
    for k in range(1, 4 * LM_FANOUT * 2 + 1):
        if k >= len(t):
            break
        dt = t[k:] - t[:-k]
        df = f[k:] - f[:-k]
        ok = (dt >= 1) & (dt <= LM_DT_MAX) & (np.abs(df) <= LM_DF_MAX) & (taken[:-k] < LM_FANOUT)
        idx = np.flatnonzero(ok)
        taken[idx] += 1
        hashes.append((f[idx] << 13) | ((df[idx] + 32) << 6) | dt[idx])
        anchors.append(t[idx])
    if not hashes:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    h = np.concatenate(hashes).astype(np.uint32)
    at = np.concatenate(anchors).astype(np.uint32)
    order = np.argsort(at, kind="stable")
    return h[order], at[order]


def encode_landmarks(hashes: np.ndarray, frames: np.ndarray) -> str:
    """base64(zlib(hash u32 LE + frame-delta u32 LE)); frames must be sorted."""
    deltas = np.diff(frames.astype(np.int64), prepend=0).astype("<u4")
    raw = np.ascontiguousarray(hashes, dtype="<u4").tobytes() + deltas.tobytes()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def _ffmpeg_cmd(path: str, max_duration_s: float) -> list[str]:
    return [
        shutil.which("ffmpeg") or "ffmpeg",
        "-nostdin", "-hide_banner", "-loglevel", "error",
        "-i", path,
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-ac", "1", "-ar", str(SAMPLE_RATE),
        # one second past the cap is enough to know it is too long without decoding all of it
        "-t", f"{max_duration_s + 1.0:.3f}",
        "-f", "s16le", "-acodec", "pcm_s16le",
        "pipe:1",
    ]  # fmt: skip


def _grow_pipe(f) -> None:
    """Let ffmpeg decode ahead while Python computes (Linux pipes default to 64 KiB)."""
    try:
        import fcntl

        fcntl.fcntl(f.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (OSError, ImportError, ValueError):
        pass


def fingerprint_audio(path: str, max_duration_s: float | None = None) -> AudioFingerprint:
    """Chromaprint raw items of the first audio stream of ``path``.

    Raises ``MediaError``: ``undecodable_audio``, ``audio_too_short`` or ``audio_too_long``.
    """
    settings = get_settings()
    # Absurdly long uploads are refused: that also bounds the memory and time of one job.
    cap = settings.audio_max_duration_s if max_duration_s is None else float(max_duration_s)
    if not os.path.isfile(path):
        raise MediaError("undecodable_audio", f"no such file: {os.path.basename(path)}")
    try:
        proc = subprocess.Popen(
            _ffmpeg_cmd(path, cap),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:  # deployment problem, not a property of the media: retryable
        raise RuntimeError("ffmpeg is not installed") from exc

    _grow_pipe(proc.stdout)
    cp = _Chromaprint(SAMPLE_RATE)
    lm = _LandmarkStream()
    n_bytes = 0
    carry = b""
    assert proc.stdout is not None and proc.stderr is not None
    try:
        while True:
            chunk = proc.stdout.read(_CHUNK_BYTES)
            if not chunk:
                break
            n_bytes += len(chunk)
            if n_bytes > (cap + 1.0) * SAMPLE_RATE * 2 + _CHUNK_BYTES:
                continue  # past the cap: only drain (ffmpeg's -t stops it soon)
            cp.feed(chunk)
            chunk = carry + chunk
            usable = len(chunk) & ~1
            carry = chunk[usable:]
            lm.feed(np.frombuffer(chunk[:usable], dtype="<i2"))
        stderr = proc.stderr.read()
        rc = proc.wait(timeout=settings.audio_decode_timeout_s)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        proc.stderr.close()

    duration_s = (n_bytes // 2) / SAMPLE_RATE
    if rc != 0 and duration_s < MIN_DURATION_S:
        detail = stderr.decode("utf-8", "replace").strip().splitlines()
        reason = detail[-1][:200] if detail else f"ffmpeg exit status {rc}"
        raise MediaError("undecodable_audio", f"cannot decode audio: {reason}")
    if n_bytes == 0:
        raise MediaError("undecodable_audio", "no audio samples decoded")
    if duration_s < MIN_DURATION_S:
        raise MediaError(
            "audio_too_short",
            f"audio is {duration_s:.2f} s long; at least {MIN_DURATION_S:g} s needed",
        )
    if duration_s > cap:
        raise MediaError("audio_too_long", f"audio is longer than the {cap:g} s limit")

    items = cp.finish()
    if items.size == 0:
        raise MediaError("audio_too_short", "audio too short for a Chromaprint fingerprint")
    lm_hashes, lm_frames = lm.finish()
    return AudioFingerprint(
        duration_s=round(duration_s, 4),
        chromaprint=encode_items(items),
        item_rate=ITEM_RATE,
        extra={
            "landmarks": encode_landmarks(lm_hashes, lm_frames),
            "landmark_count": len(lm_hashes),
        },
    )
