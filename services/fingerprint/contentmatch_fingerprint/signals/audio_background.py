"""Audio signal: peaks for finding registered music under a louder foreground (speech, a track).

Computed from the 1024-point STFT of the peak stream (``audio_peaks``): its linear bins from
``BackgroundParams.bin_lo`` to ``bin_hi`` (about 300 Hz to 3 kHz, 10.8 Hz apart, where a long
window resolves a held musical partial from the fast-moving harmonics of speech).

Two kinds of peaks go into one payload (the service cannot tell a reference from a query):

* **reference** peaks: strong local maxima (a wide neighbourhood, a contrast above a wide local
  mean, a budget per quarter second): the music's own constellation, what the match index stores;
* **query** peaks: every small local maximum of the whitened spectrum (the spectrum minus its
  moving average along frequency, frame by frame), with no budget. Under speech the music's
  partials stay local maxima between the speech's harmonics and in its pauses, but they are no
  longer among the strongest: only a dense picking keeps them. The match service counts how many
  of a reference's peaks reappear among them at one consistent time offset.

Payload: ``contentmatch_shared.peaks_payload.encode_background_peaks``.
"""

from __future__ import annotations

import numpy as np

from contentmatch_shared.peaks_payload import BG_QUERY, BG_REFERENCE, encode_background_peaks

from .audio_config import AUDIO_FINGERPRINT

_P = AUDIO_FINGERPRINT.background


def margin_frames() -> int:
    """Frames of context a block needs on each side."""
    return max(_P.ref_nbhd_frames, _P.ref_mean_frames, _P.query_nbhd_frames) + 1


def block_peaks(s_db: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Peaks of one block of the background dB spectrogram: (frame, bin, strength, flags)."""
    from .audio import _window_reduce  # the landmarks' window filters (imported late: no cycle)

    rt, rf = _P.ref_nbhd_frames, _P.ref_nbhd_bins
    mt, mf = _P.ref_mean_frames, _P.ref_mean_bins
    qt, qf, qw = _P.query_nbhd_frames, _P.query_nbhd_bins, _P.query_whiten_bins
    pt = max(rt, mt, qt)
    pf = max(rf, mf, qf, qw)
    x = np.pad(s_db, ((pt, pt), (pf, pf)), mode="edge")
    n_t, n_f = x.shape

    def window(op, half_t: int, half_f: int) -> np.ndarray:
        inner = x[pt - half_t : n_t - (pt - half_t), pf - half_f : n_f - (pf - half_f)]
        if half_t:
            inner = _window_reduce(op, inner, 2 * half_t + 1, 0)
        return _window_reduce(op, inner, 2 * half_f + 1, 1)

    audible = s_db > _P.floor_db
    # reference: local maxima of a wide neighbourhood, above the mean of a wider one
    ref_contrast = s_db - window(np.add, mt, mf) * np.float32(1.0 / ((2 * mt + 1) * (2 * mf + 1)))
    is_ref = (s_db == window(np.maximum, rt, rf)) & (ref_contrast > _P.ref_contrast_db) & audible
    # query: small local maxima of the whitened spectrum (each frame minus its moving average)
    white = s_db - window(np.add, 0, qw) * np.float32(1.0 / (2 * qw + 1))
    is_q = (s_db == window(np.maximum, qt, qf)) & (white > _P.query_contrast_db) & audible
    t, f = np.nonzero(is_ref | is_q)
    flags = np.where(is_ref[t, f], BG_REFERENCE, 0) | np.where(is_q[t, f], BG_QUERY, 0)
    strength = np.where(is_ref[t, f], ref_contrast[t, f], white[t, f])
    return t, f, strength.astype(np.float32), flags.astype(np.uint8)


def payload(peaks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> str:
    """The payload of the peaks of every block: the strongest reference peaks of every quarter
    second (``ref_per_s``), every query peak up to ``query_per_s``."""
    if not peaks:
        z = np.zeros(0, np.int64)
        return encode_background_peaks(z, z, np.zeros(0, np.uint8))
    t = np.concatenate([p[0] for p in peaks])
    f = np.concatenate([p[1] for p in peaks])
    v = np.concatenate([p[2] for p in peaks])
    flags = np.concatenate([p[3] for p in peaks])
    # the budget is per quarter second: in a pause of a foreground the music's peaks get their
    # share (per second, the foreground's stronger peaks would take all of it)
    quarter = (t * _P.hop * 4) // _P.sample_rate
    for bit, per_s in ((BG_REFERENCE, _P.ref_per_s), (BG_QUERY, _P.query_per_s)):
        has = (flags & bit) != 0
        order = np.lexsort((-v, ~has, quarter))  # per quarter, flagged first, strongest first
        rank = np.empty(len(t), np.int64)
        q_sorted = quarter[order]
        rank[order] = np.arange(len(t)) - np.searchsorted(q_sorted, q_sorted, "left")
        flags = np.where(has & (rank >= per_s // 4), flags & ~np.uint8(bit), flags)
    keep = flags != 0
    t, f, flags = t[keep], f[keep], flags[keep]
    order = np.lexsort((f, t))
    return encode_background_peaks(t[order], f[order], flags[order])
