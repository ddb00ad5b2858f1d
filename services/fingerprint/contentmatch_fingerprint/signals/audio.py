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
import json
import math
import os
import shutil
import zlib

import numpy as np

from contentmatch_shared.decode_limits import (
    MIN_WALL_S,
    AudioBudget,
    Budget,
    DecodeLimits,
    audio_budget,
)
from contentmatch_shared.decode_sandbox import DecoderProcess, admit, run_decoder
from contentmatch_shared.errors import MediaError
from contentmatch_shared.fingerprints import AudioFingerprint
from contentmatch_shared.landmark_pairs import pair_peaks
from contentmatch_shared.peaks_payload import BG_PEAKS_KEY, PEAKS_KEY
from contentmatch_shared.settings import get_settings

from .audio_config import AUDIO_FINGERPRINT
from .audio_peaks import PeakStream

SAMPLE_RATE = 11025  # Chromaprint's internal rate: decoding straight to it skips its resampler
ITEM_HOP = 1365  # samples between items (frame 4096, overlap 2/3) for the default algorithm
ITEM_RATE = SAMPLE_RATE / ITEM_HOP  # ~8.077 items/s
MIN_DURATION_S = 3.0  # the first item needs ~2.6 s of audio; below 3 s there is nothing to match
MOSTLY_DECODED = 0.5  # decoder errors and less than this share of the declared duration: corrupt
_CHUNK_BYTES = 1 << 19  # ~24 s of PCM per read + feed (fewer, larger numpy calls)
_ALGORITHM_DEFAULT = 1  # CHROMAPRINT_ALGORITHM_TEST2, what fpcalc and AcoustID use


# Landmarks (second signal, see contentmatch_match.index.audio): parameters in audio_config.
_LM = AUDIO_FINGERPRINT.landmarks

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
    """Incremental landmarks, fed while ffmpeg is still decoding.

    STFT frames are computed as soon as their samples arrive (one strided ``rfft`` per chunk,
    float32); peaks are picked block by block (``_LM.block`` frames plus a margin wide enough for
    the filters), so only one block of the spectrogram is ever held and nothing is converted twice.
    The result does not depend on how the PCM is chunked.
    """

    def __init__(self) -> None:
        import scipy.fft  # noqa: F401  (imported here: heavy, and only the worker needs it)

        # int16 → [-1, 1) folded into the window: one multiply per sample instead of two
        self._window = (np.hanning(_LM.nfft) / 32768.0).astype(np.float32)
        self._buf = np.zeros(0, np.float32)  # samples not yet framed
        self._rows: list[np.ndarray] = []  # dB rows from frame ``_rows0`` on
        self._n_rows = 0
        self._rows0 = 0
        self._b0 = 0  # first frame whose peaks are not picked yet
        self._peaks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def feed(self, pcm: np.ndarray) -> None:
        import scipy.fft

        x = np.asarray(pcm, dtype=np.float32)
        if len(self._buf):
            x = np.concatenate([self._buf, x])
        n = max(0, (len(x) - _LM.nfft) // _LM.hop + 1)
        if n:
            frames = np.lib.stride_tricks.as_strided(
                x, shape=(n, _LM.nfft), strides=(_LM.hop * x.strides[0], x.strides[0])
            )
            spec = scipy.fft.rfft(frames * self._window, axis=1, workers=1, overwrite_x=True)
            mag = np.abs(spec[:, _LM.bin_lo : _LM.bin_hi])
            mag += np.float32(1e-5)
            db = np.log10(mag, out=mag)
            db *= np.float32(20.0)
            self._rows.append(db)
            self._n_rows += n
            self._pick(final=False)
        self._buf = x[n * _LM.hop :].copy()

    def _pick(self, final: bool) -> None:
        margin = _LM.peak_frames + 8
        end = self._rows0 + self._n_rows  # frames computed so far
        while self._b0 < end and (final or self._b0 + _LM.block + margin <= end):
            if len(self._rows) > 1:
                self._rows = [np.concatenate(self._rows)]
            rows = self._rows[0]
            b0 = self._b0
            a = max(0, b0 - margin)
            b = min(end, b0 + _LM.block + margin)
            block = rows[a - self._rows0 : b - self._rows0]
            t, f, v = _block_peaks(block)
            t = t + a
            own = (t >= b0) & (t < min(end, b0 + _LM.block))
            self._peaks.append((t[own], f[own], v[own]))
            self._b0 = b0 + _LM.block
            keep = max(0, self._b0 - margin) - self._rows0
            if keep > 0:
                self._rows = [rows[keep:]]
                self._rows0 += keep
                self._n_rows -= keep

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        if self._rows0 + self._n_rows >= 2 * _LM.peak_frames + 2:
            self._pick(final=True)
        self._rows = []
        if not self._peaks:
            return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
        t = np.concatenate([p[0] for p in self._peaks])
        f = np.concatenate([p[1] for p in self._peaks])
        v = np.concatenate([p[2] for p in self._peaks])
        return _pair_peaks(t, f, v)


def landmarks_from_pcm(pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hashes uint32, anchor frames uint32) of mono int16 PCM at 11025 Hz, sorted by frame."""
    st = _LandmarkStream()
    st.feed(np.asarray(pcm))
    return st.finish()


def _along(a: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    return a[start:stop] if axis == 0 else a[:, start:stop]


def _window_reduce(op, x: np.ndarray, w: int, axis: int) -> np.ndarray:
    """``op`` (np.maximum or np.add) over every window of ``w`` consecutive elements along
    ``axis`` (output is ``w - 1`` shorter), by doubling: a few whole-array numpy passes instead
    of scipy.ndimage's line-by-line filters (several times faster on this small, wide array)."""
    n = x.shape[axis]
    out_len = n - w + 1
    pows = {1: x}  # pows[k][i] = op over x[i : i + k]
    k = 1
    while 2 * k <= w:
        m = pows[k]
        size = m.shape[axis]
        pows[2 * k] = op(_along(m, axis, 0, size - k), _along(m, axis, k, size))
        k *= 2
    if op is np.maximum:  # idempotent: two overlapping windows of k cover w
        return op(_along(pows[k], axis, 0, out_len), _along(pows[k], axis, w - k, w - k + out_len))
    out, off = None, 0
    for p in sorted(pows, reverse=True):  # disjoint pieces: binary decomposition of w
        if off + p <= w:
            piece = _along(pows[p], axis, off, off + out_len)
            out = piece.copy() if out is None else op(out, piece, out=out)
            off += p
    return out


def _block_peaks(s_db: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of one block of the dB spectrogram: (frame, bin, contrast) in the block.

    Same as ``scipy.ndimage`` ``maximum_filter`` / ``uniform_filter`` with ``mode="nearest"``."""
    return _block_maxima(s_db, ((_LM.peak_frames, _LM.peak_bins, _LM.contrast_db),))[0]


def _block_maxima(
    s_db: np.ndarray, specs: tuple[tuple[int, int, float], ...]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Local maxima for each (half-width in frames, in bins, minimum contrast) of ``specs``
    (half-widths at most the landmarks'), sharing one contrast computation."""
    wt = 2 * _LM.peak_frames + 1
    pf = _LM.mean_bins // 2
    x = np.pad(s_db, ((_LM.peak_frames, _LM.peak_frames), (pf, pf)), mode="edge")
    # contrast against a wide local mean: robust to EQ / band-pass tilt and to level
    local_sum = _window_reduce(np.add, _window_reduce(np.add, x, wt, 0), _LM.mean_bins, 1)
    contrast = s_db - local_sum * np.float32(1.0 / (wt * _LM.mean_bins))
    out = []
    for peak_t, peak_f, min_contrast in specs:
        dt = _LM.peak_frames - peak_t
        inner = x[dt : x.shape[0] - dt, pf - peak_f : x.shape[1] - (pf - peak_f)]
        local_max = _window_reduce(
            np.maximum, _window_reduce(np.maximum, inner, 2 * peak_t + 1, 0), 2 * peak_f + 1, 1
        )
        is_max = s_db == local_max
        is_max &= contrast > min_contrast
        is_max &= s_db > -70.0
        t, f = np.nonzero(is_max)
        out.append((t, f, contrast[t, f]))
    return out


def _pair_peaks(t: np.ndarray, f: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(t) == 0:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    # density control: the strongest _LM.peaks_per_s peaks of every second
    sec = (t * _LM.hop) // SAMPLE_RATE
    order = np.lexsort((-v, sec))
    t, f, sec = t[order], f[order], sec[order]
    first = np.searchsorted(sec, sec, "left")
    keep = (np.arange(len(sec)) - first) < _LM.peaks_per_s
    t, f = t[keep], f[keep]
    order = np.lexsort((f, t))
    t, f = t[order].astype(np.int64), f[order].astype(np.int64)
    return pair_peaks(t, f, fanout=_LM.fanout, dt_max=_LM.dt_max, df_max=_LM.df_max)


def encode_landmarks(hashes: np.ndarray, frames: np.ndarray) -> str:
    """base64(zlib(hash u32 LE + frame-delta u32 LE)); frames must be sorted."""
    deltas = np.diff(frames.astype(np.int64), prepend=0).astype("<u4")
    raw = np.ascontiguousarray(hashes, dtype="<u4").tobytes() + deltas.tobytes()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


# Downmix and resample in one swresample pass with fpcalc's own cheap settings (a 16-tap filter,
# linear interpolation, cutoff at 0.8 x Nyquist = 4.4 kHz: above everything either signal looks
# at). One decoder thread and one filter thread: the service runs one job per worker process.
_RESAMPLE = (
    f"aresample={SAMPLE_RATE}:filter_size=16:phase_shift=8:linear_interp=1:cutoff=0.8:ochl=mono,"
    "aformat=sample_fmts=s16:channel_layouts=mono"
)


def _ffmpeg_cmd(path: str, max_duration_s: float) -> list[str]:
    return [
        shutil.which("ffmpeg") or "ffmpeg",
        "-nostdin", "-hide_banner", "-loglevel", "error",
        "-threads", "1", "-filter_threads", "1",
        "-i", path,
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-af", _RESAMPLE,
        # one second past the cap is enough to know it is too long without decoding all of it
        "-t", f"{max_duration_s + 1.0:.3f}",
        "-f", "s16le", "-acodec", "pcm_s16le",
        # write whole 32 KiB I/O buffers: by default a pipe is flushed after every packet (~80
        # tiny writes per second of audio, each waking this process)
        "-flush_packets", "0",
        "pipe:1",
    ]  # fmt: skip


def _grow_pipe(f) -> None:
    """Let ffmpeg decode ahead while Python computes (Linux pipes default to 64 KiB)."""
    try:
        import fcntl

        fcntl.fcntl(f.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (OSError, ImportError, ValueError):
        pass


def _ffprobe_cmd(path: str) -> list[str]:
    return [
        shutil.which("ffprobe") or "ffprobe",
        "-v", "error", "-hide_banner",
        "-select_streams", "a:0",
        "-show_entries", "stream=sample_rate,channels,duration:format=duration",
        "-of", "json",
        path,
    ]  # fmt: skip


def _float(value: object) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def probe_audio(path: str, limits: DecodeLimits) -> AudioBudget:
    """What the first audio stream declares (rate, channels, duration), as a decode budget.

    Raises MediaError: ``undecodable_audio`` when there is no audio stream, or the budget's
    refusals (absurd sample rate or channel count, too many samples to decode)."""
    probe = Budget(cpu_s=5.0, wall_s=MIN_WALL_S, memory_bytes=limits.decoder_process_bytes)
    try:
        out, ended = run_decoder(_ffprobe_cmd(path), probe, "reading the audio headers")
    except FileNotFoundError as exc:  # deployment problem, not a property of the media
        raise RuntimeError("ffprobe is not installed") from exc
    try:
        streams = json.loads(out or b"{}").get("streams") or []
        declared = json.loads(out or b"{}").get("format") or {}
    except (ValueError, AttributeError):
        streams, declared = [], {}
    if not streams:
        reason = ended.last_line if ended.returncode != 0 else "no audio stream"
        raise MediaError("undecodable_audio", f"cannot decode audio: {reason}")
    stream = streams[0]
    try:
        rate, channels = int(stream.get("sample_rate") or 0), int(stream.get("channels") or 0)
    except (TypeError, ValueError):
        rate, channels = 0, 0
    duration = _float(stream.get("duration")) or _float(declared.get("duration"))
    return audio_budget(limits, rate, channels, duration)


def fingerprint_audio(path: str, max_duration_s: float | None = None) -> AudioFingerprint:
    """Chromaprint raw items of the first audio stream of ``path``.

    The headers are read first (ffprobe) to compute the decode's budget (``decode_limits``);
    ffmpeg then runs under it (``decode_sandbox.DecoderProcess``: deadline, CPU, memory, stderr
    drained so it never blocks).

    Raises ``MediaError``: ``undecodable_audio``, ``audio_too_short``, ``audio_too_long``, a
    budget refusal (``audio_sample_rate_unsupported``, ``audio_channels_unsupported``,
    ``audio_sample_budget_exceeded``) or a limit (``decode_timeout``, ``decode_cpu_exceeded``,
    ``decode_memory_exceeded``, ``decoder_crashed``).
    """
    settings = get_settings()
    # Absurdly long uploads are refused: that also bounds the memory and time of one job.
    cap = settings.audio_max_duration_s if max_duration_s is None else float(max_duration_s)
    if not os.path.isfile(path):
        raise MediaError("undecodable_audio", f"no such file: {os.path.basename(path)}")
    limits = DecodeLimits.from_settings(settings)
    budget = probe_audio(path, limits)
    admit(budget.worker)
    try:
        decoder = DecoderProcess(_ffmpeg_cmd(path, cap), budget.decoder)
    except FileNotFoundError as exc:  # deployment problem, not a property of the media: retryable
        raise RuntimeError("ffmpeg is not installed") from exc

    _grow_pipe(decoder.stdout)
    cp = _Chromaprint(SAMPLE_RATE)
    lm = _LandmarkStream()
    pk = PeakStream()
    n_bytes = 0
    carry = b""
    with decoder:
        while True:
            chunk = decoder.stdout.read(_CHUNK_BYTES)
            if not chunk:
                break
            n_bytes += len(chunk)
            if n_bytes > (cap + 1.0) * SAMPLE_RATE * 2 + _CHUNK_BYTES:
                continue  # past the cap: only drain (ffmpeg's -t stops it soon)
            cp.feed(chunk)
            chunk = carry + chunk
            usable = len(chunk) & ~1
            carry = chunk[usable:]
            pcm = np.frombuffer(chunk[:usable], dtype="<i2")
            lm.feed(pcm)
            pk.feed(pcm)
        ended = decoder.wait()

    limit_hit = ended.failure(budget.decoder, "decoding the audio")
    if limit_hit is not None:
        raise limit_hit
    duration_s = (n_bytes // 2) / SAMPLE_RATE
    if ended.returncode != 0 and duration_s < MIN_DURATION_S:
        raise MediaError("undecodable_audio", f"cannot decode audio: {ended.last_line}")
    declared = budget.declared_s
    if ended.stderr_lines and declared and duration_s < MOSTLY_DECODED * min(declared, cap):
        raise MediaError(
            "undecodable_audio",
            f"only {duration_s:.1f} s of the declared {declared:.1f} s decoded "
            f"({ended.stderr_lines} decoder errors, last: {ended.last_line})",
        )
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
            PEAKS_KEY: pk.payload(),
            BG_PEAKS_KEY: pk.background_payload(),
        },
    )
