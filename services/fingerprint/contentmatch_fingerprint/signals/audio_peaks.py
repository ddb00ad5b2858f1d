"""Audio signal: spectral peaks on a log-frequency axis (pitch- and speed-invariant matching).

Computed from the same decoded PCM as Chromaprint and the landmarks (mono int16 at 11025 Hz):
an STFT (1024-point Hann window, hop 256 = 43.07 frames/s) is resampled onto a log-frequency axis
of ``_PK.bins_per_semitone`` bins per semitone between ``_PK.fmin`` and ``_PK.fmax`` (two-tap
interpolation of the linear bins), so that a pitch shift of the whole recording moves every peak
by the same number of bins. Peaks are local maxima over a neighbourhood that is the same musical
interval everywhere, stronger than their surroundings and louder than an absolute floor (silence
and near-silence give none); the strongest of every second are kept. Parameters:
``audio_config.PeakParams``.

The match service builds the invariant triplet hashes from these peaks (see
``contentmatch_match.index.audio_shift``): the payload carries the peaks themselves, frame and
fractional log-frequency, so hashing and its thresholds live in one place.
"""

from __future__ import annotations

import numpy as np

from contentmatch_shared.peaks_payload import PK_FRAME_RATE, PK_UNITS_PER_SEMITONE, encode_peaks

from . import audio_background as bg
from .audio_config import AUDIO_FINGERPRINT

_BG = AUDIO_FINGERPRINT.background

SAMPLE_RATE = 11025
_PK = AUDIO_FINGERPRINT.peaks
assert abs(SAMPLE_RATE / _PK.hop - PK_FRAME_RATE) < 1e-9


def _log_axis() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mapping from linear STFT bins to the log-frequency bins.

    Below ~555 Hz a log bin is narrower than a linear one: two-tap interpolation at its centre.
    Above, it covers several linear bins (its tile, split at the geometric midpoints): their
    maximum, so that no partial falls between two sampled points.
    Returns (interpolation low bin, interpolation weight, tile edges, first tiled bin)."""
    n_semi = 12 * np.log2(_PK.fmax / _PK.fmin)
    n = int(n_semi * _PK.bins_per_semitone)
    k = np.arange(n)
    step = 12.0 * _PK.bins_per_semitone
    pos = _PK.fmin * 2.0 ** (k / step) * _PK.nfft / SAMPLE_RATE
    lo = np.floor(pos).astype(np.int64)
    w = (pos - lo).astype(np.float32)
    edges = np.rint(_PK.fmin * 2.0 ** ((np.arange(n + 1) - 0.5) / step) * _PK.nfft / SAMPLE_RATE)
    edges = edges.astype(np.int64)
    narrow = np.flatnonzero((edges[1:] - edges[:-1]) < 2)
    first_tiled = int(narrow.max()) + 1 if len(narrow) else 0
    return lo, w, edges, first_tiled


class PeakStream:
    """Incremental log-frequency peaks of mono int16 PCM at 11025 Hz (fed in any chunking)."""

    def __init__(self) -> None:
        self._window = (np.hanning(_PK.nfft) / 32768.0).astype(np.float32)
        self._lo, self._w, edges, self._first_tiled = _log_axis()
        self._bin_lo = int(self._lo.min())
        self._bin_hi = int(edges[-1])  # the last tile ends there
        self._starts = edges[self._first_tiled : -1] - self._bin_lo
        self._buf = np.zeros(0, np.float32)
        self._rows: list[np.ndarray] = []
        self._n_rows = 0
        self._rows0 = 0
        self._b0 = 0
        self._peaks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        # the background peaks' linear bins ride along as extra columns of the same rows
        assert self._bin_lo <= _BG.bin_lo and _BG.bin_hi <= self._bin_hi and _BG.hop == _PK.hop
        self._n_log = len(self._lo)
        self._bg_peaks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def feed(self, pcm: np.ndarray) -> None:
        import scipy.fft

        x = np.asarray(pcm, dtype=np.float32)
        if len(self._buf):
            x = np.concatenate([self._buf, x])
        n = max(0, (len(x) - _PK.nfft) // _PK.hop + 1)
        if n:
            frames = np.lib.stride_tricks.as_strided(
                x, shape=(n, _PK.nfft), strides=(_PK.hop * x.strides[0], x.strides[0])
            )
            spec = scipy.fft.rfft(frames * self._window, axis=1, workers=1, overwrite_x=True)
            sub = spec[:, self._bin_lo : self._bin_hi]
            power = sub.real * sub.real  # power, not magnitude: no square root per bin
            power += sub.imag * sub.imag
            k = self._first_tiled
            lo = self._lo[:k] - self._bin_lo
            w = self._w[:k]
            nl = self._n_log
            logp = np.empty((n, nl + _BG.bin_hi - _BG.bin_lo), np.float32)
            logp[:, :k] = power[:, lo] * (1 - w) + power[:, lo + 1] * w
            logp[:, k:nl] = np.maximum.reduceat(power, self._starts, axis=1)
            logp[:, nl:] = power[:, _BG.bin_lo - self._bin_lo : _BG.bin_hi - self._bin_lo]
            logp += np.float32(1e-10)
            db = np.log10(logp, out=logp)
            db *= np.float32(10.0)
            self._rows.append(db)
            self._n_rows += n
            self._pick(final=False)
        self._buf = x[n * _PK.hop :].copy()

    def _pick(self, final: bool) -> None:
        margin = max(_PK.nbhd_frames, _PK.mean_frames, bg.margin_frames()) + 2
        end = self._rows0 + self._n_rows
        while self._b0 < end and (final or self._b0 + _PK.block + margin <= end):
            if len(self._rows) > 1:
                self._rows = [np.concatenate(self._rows)]
            rows = self._rows[0]
            b0 = self._b0
            a = max(0, b0 - margin)
            b = min(end, b0 + _PK.block + margin)
            block = rows[a - self._rows0 : b - self._rows0]
            t, f, v = _block_peaks(block[:, : self._n_log])
            t = t + a
            own = (t >= b0) & (t < min(end, b0 + _PK.block))
            self._peaks.append((t[own], f[own], v[own]))
            t, f, v, flags = bg.block_peaks(block[:, self._n_log :])
            t = t + a
            own = (t >= b0) & (t < min(end, b0 + _PK.block))
            self._bg_peaks.append((t[own], f[own], v[own], flags[own]))
            self._b0 = b0 + _PK.block
            keep = max(0, self._b0 - margin) - self._rows0
            if keep > 0:
                self._rows = [rows[keep:]]
                self._rows0 += keep
                self._n_rows -= keep

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(frames int64, log-frequency in semitones above ``_PK.fmin`` float32), time-sorted."""
        if self._rows0 + self._n_rows >= 2 * _PK.nbhd_frames + 2:
            self._pick(final=True)
        self._rows = []
        if not self._peaks:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        t = np.concatenate([p[0] for p in self._peaks])
        f = np.concatenate([p[1] for p in self._peaks])
        v = np.concatenate([p[2] for p in self._peaks])
        # density control: the strongest _PK.peaks_per_s of every second
        sec = (t * _PK.hop) // SAMPLE_RATE
        order = np.lexsort((-v, sec))
        t, f, sec = t[order], f[order], sec[order]
        first = np.searchsorted(sec, sec, "left")
        keep = (np.arange(len(sec)) - first) < _PK.peaks_per_s
        t, f = t[keep], f[keep]
        order = np.lexsort((f, t))
        return t[order].astype(np.int64), f[order].astype(np.float32)

    def payload(self) -> str:
        t, f = self.finish()
        return encode_peaks(t, f)

    def background_payload(self) -> str:
        """The background peaks' payload (after ``finish`` or ``payload``)."""
        return bg.payload(self._bg_peaks)


def _block_peaks(s_db: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of one block of the log-frequency dB spectrogram: (frame, fractional
    semitone, contrast)."""
    from .audio import _window_reduce  # the landmarks' window filter (imported late: no cycle)

    nf = round(_PK.nbhd_semitones * _PK.bins_per_semitone)
    mf = round(_PK.mean_semitones * _PK.bins_per_semitone)
    wt, wf = 2 * _PK.nbhd_frames + 1, 2 * nf + 1
    mt, mwf = 2 * _PK.mean_frames + 1, 2 * mf + 1
    pt = max(_PK.nbhd_frames, _PK.mean_frames)
    x = np.pad(s_db, ((pt, pt), (mf, mf)), mode="edge")
    xm = x[pt - _PK.mean_frames : x.shape[0] - (pt - _PK.mean_frames)]
    local_sum = _window_reduce(np.add, _window_reduce(np.add, xm, mt, 0), mwf, 1)
    contrast = s_db - local_sum * np.float32(1.0 / (mt * mwf))
    xi = x[
        pt - _PK.nbhd_frames : x.shape[0] - (pt - _PK.nbhd_frames), mf - nf : x.shape[1] - (mf - nf)
    ]
    local_max = _window_reduce(np.maximum, _window_reduce(np.maximum, xi, wt, 0), wf, 1)
    is_max = s_db == local_max
    is_max &= contrast > _PK.contrast_db
    is_max &= s_db > _PK.floor_db
    # not on the edges of the axis: the true maximum may lie outside
    is_max[:, 0] = False
    is_max[:, -1] = False
    t, f = np.nonzero(is_max)
    # parabolic interpolation of the peak's log-frequency between its neighbours
    y0, y1, y2 = s_db[t, f - 1], s_db[t, f], s_db[t, f + 1]
    den = y0 - 2 * y1 + y2
    delta = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
    semis = (f + np.clip(delta, -0.5, 0.5)) / _PK.bins_per_semitone
    return t, semis.astype(np.float32), contrast[t, f]


def peaks_from_pcm(pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, semitones above _PK.fmin) of mono int16 PCM at 11025 Hz (tests, benchmarks)."""
    st = PeakStream()
    st.feed(np.asarray(pcm))
    return st.finish()


__all__ = ["PK_UNITS_PER_SEMITONE", "PeakStream", "peaks_from_pcm"]
