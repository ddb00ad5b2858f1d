"""Registered music in the background: under speech or another, louder track.

Under a foreground the music's spectral peaks are no longer the strongest ones of the query, so
the hashes of the other signals (built from the strongest peaks, or from chroma) mostly come from
the foreground. But many of the music's peaks stay local maxima of the mixture: in the
foreground's pauses, and between the harmonics of speech, which a 1024-point window resolves from
the music's held partials. The fingerprint service sends two kinds of peaks
(``signals/audio_background.py``): a reference's strongest peaks, which this index stores, and a
query's dense peaks (every small maximum of the whitened spectrum), which it is searched with.

**Candidates.** Every stored peak is paired with every other within a small zone after it
(``pair_dt_max`` frames, ``pair_df_max`` bins); the query's dense peaks are paired the same way.
Pairs agreeing on a (work, time offset bucket) are counted; the best buckets' works are verified.

**Verification.** Single peaks, not pairs (a pair survives only when both of its peaks do): for a
candidate work, every (query peak, reference peak) within ``bin_tol`` bins votes for its time
offset. Unrelated audio spreads its votes evenly over the offsets; the music under the foreground
piles them on one. The work is accepted when the best offset's count stands ``min_z`` standard
deviations above the counts of the offsets around it (their median, Poisson), no other offset
within the query's length comes close (``max_runner_ratio``: a short pattern shared by two
tracks, a loop, agrees at every one of its repeats; a work's whole music at one offset), and its
coincidences spread over at least ``min_span_s``: the null is measured on the same query and
work, so a dense query or a dense reference does not raise the score by itself. Silence has no
peaks (an absolute floor at fingerprint time); a held chord agrees at many neighbouring offsets
at once and so raises its own null.

The background music is assumed not time-scaled (a pitch or speed change under a foreground is
not searched). Thresholds: ``audio_config.BackgroundThresholds``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from contentmatch_shared.peaks_payload import (
    BG_PEAKS_KEY,
    BG_REFERENCE,
    PK_FRAME_RATE,
    decode_background_peaks,
)

from .audio_config import AUDIO_MATCH, BackgroundThresholds

_DF_SPAN = 2 * AUDIO_MATCH.background.pair_df_max + 1
_SLOT_GAP = 512  # unused frames between works so offset buckets never straddle two works


@dataclass
class BackgroundPeaks:
    """The background peaks of one recording: all of them (a query's) and the reference's."""

    frames: np.ndarray  # int64, sorted
    bins: np.ndarray  # int64
    reference: np.ndarray  # bool: a reference peak


@dataclass
class BackgroundMatch:
    slot: int
    offset: int  # reference frame - query frame
    z: float
    count: int  # coincidences at the offset above the null
    query_frames: np.ndarray  # query frames of the coincidences that define the span


def decode(extra: object) -> BackgroundPeaks | None:
    if not isinstance(extra, dict) or not extra.get(BG_PEAKS_KEY):
        return None
    t, f, flags = decode_background_peaks(str(extra[BG_PEAKS_KEY]))
    return BackgroundPeaks(t, f, (flags & BG_REFERENCE) != 0)


def pair_keys(
    t: np.ndarray, f: np.ndarray, cfg: BackgroundThresholds
) -> tuple[np.ndarray, np.ndarray]:
    """(key, anchor index) of every pair of peaks (sorted by time) in the zone after the anchor:
    ``1 <= dt <= pair_dt_max`` frames, ``|df| <= pair_df_max`` bins."""
    keys, anchors = [], []
    n = len(t)
    k = 1
    while k < n:
        dt = t[k:] - t[:-k]
        if int(dt.min()) > cfg.pair_dt_max:
            break
        df = f[k:] - f[:-k]
        ok = (dt >= 1) & (dt <= cfg.pair_dt_max) & (np.abs(df) <= cfg.pair_df_max)
        idx = np.flatnonzero(ok)
        keys.append((f[idx] * _DF_SPAN + df[idx] + cfg.pair_df_max) * 16 + dt[idx])
        anchors.append(idx)
        k += 1
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(keys), np.concatenate(anchors)


class BackgroundIndex:
    """Reference peaks per work plus an inverted index of their pair keys (``runs``: the audio
    index's sorted runs of (key, address)); the caller holds the lock."""

    # the thresholds are read from the configuration, not kept in a snapshot's state
    cfg: BackgroundThresholds = AUDIO_MATCH.background

    def __init__(self, runs: Callable[[], object]):
        self._runs = runs()
        self._peaks: list[tuple[np.ndarray, np.ndarray] | None] = []  # per slot, sorted by bin
        self._base: list[int] = []
        self._next = 0
        assert self.cfg.pair_dt_max < 16  # four bits of the key

    def nbytes(self) -> int:
        own = sum(a.nbytes + b.nbytes for p in self._peaks if p is not None for a, b in [p])
        return int(self._runs.nbytes() + own + 16 * len(self._peaks))

    def add(self, slot: int, peaks: BackgroundPeaks | None) -> None:
        assert slot == len(self._peaks)
        if peaks is None or not peaks.reference.any():
            self._peaks.append(None)
            self._base.append(self._next)
            return
        t, f = peaks.frames[peaks.reference], peaks.bins[peaks.reference]
        order = np.lexsort((t, f))
        self._peaks.append((t[order].astype(np.int32), f[order].astype(np.uint8)))
        base = self._next
        self._base.append(base)
        self._next = base + int(t.max()) + 1 + _SLOT_GAP
        keys, anchors = pair_keys(t, f, self.cfg)
        self._runs.add(keys, t[anchors] + base)

    def compact(self, alive: np.ndarray) -> None:
        """Drop the removed works' peaks and postings; renumber the slots like the caller."""
        base = np.asarray(self._base, np.int64)

        def slot_of(p: np.ndarray) -> np.ndarray:
            return np.searchsorted(base, p.astype(np.int64), "right") - 1

        self._runs.filter(lambda p: alive[slot_of(p)])
        live = np.flatnonzero(alive)
        shift = np.zeros(len(base), np.int64)
        peaks, bases, nxt = [], [], 0
        for i in live:
            p = self._peaks[i]
            span = int(p[0].max()) + 1 + _SLOT_GAP if p is not None else 0
            shift[i] = nxt - base[i]
            peaks.append(p)
            bases.append(nxt)
            nxt += span
        self._runs.remap(
            lambda p: (
                p.astype(np.int64) + shift[np.searchsorted(base, p.astype(np.int64), "right") - 1]
            )
        )
        self._peaks, self._base, self._next = peaks, bases, nxt

    def search(self, q: BackgroundPeaks, alive: np.ndarray) -> list[BackgroundMatch]:
        cfg = self.cfg
        if len(q.frames) < 2 or self._runs.size() == 0:
            return []
        keys, anchors = pair_keys(q.frames, q.bins, cfg)
        n_keys = len(_key_space(cfg))
        cap = max(cfg.key_cap_min, cfg.key_cap_factor * self._runs.size() // n_keys)
        pi, pos = self._runs.lookup(keys, cap)
        if len(pi) == 0:
            return []
        base = np.asarray(self._base, np.int64)
        slots = np.searchsorted(base, pos, "right") - 1
        offsets = pos - base[slots] - q.frames[anchors[pi]]
        out: list[BackgroundMatch] = []
        for slot in _candidate_slots(slots, offsets, cfg):
            if not alive[slot] or self._peaks[slot] is None:
                continue
            m = self._verify(slot, q)
            if m is not None:
                out.append(m)
        return out

    def _verify(self, slot: int, q: BackgroundPeaks) -> BackgroundMatch | None:
        cfg = self.cfg
        rt, rf = self._peaks[slot]
        offs, qidx = [], []
        for d in range(-cfg.bin_tol, cfg.bin_tol + 1):
            lo = np.searchsorted(rf, q.bins + d, "left")
            hi = np.searchsorted(rf, q.bins + d, "right")
            cnt = hi - lo
            total = int(cnt.sum())
            if total == 0:
                continue
            qi = np.repeat(np.arange(len(q.frames)), cnt)
            ri = np.repeat(lo - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt) + np.arange(total)
            offs.append(rt[ri].astype(np.int64) - q.frames[qi])
            qidx.append(qi)
        if not offs:
            return None
        o = np.concatenate(offs)
        qi = np.concatenate(qidx)
        lo = int(o.min())
        h = np.bincount(o - lo).astype(np.float64)
        w = 2 * cfg.frame_tol + 1
        h = np.convolve(h, np.ones(w), "same")
        k = int(np.argmax(h))
        null = float(np.median(h[max(0, k - cfg.null_window) : k + cfg.null_window + 1])) + 1.0
        z = (float(h[k]) - null) / np.sqrt(null)
        if z < cfg.min_z:
            return None
        span = int(q.frames[-1] - q.frames[0])
        a = max(0, k - span)
        around = h[a : k + span + 1].copy()
        around[max(0, k - a - cfg.runner_exclude) : k - a + cfg.runner_exclude + 1] = 0.0
        if around.max() - null > cfg.max_runner_ratio * (h[k] - null):
            return None
        near = np.abs(o - (k + lo)) <= cfg.frame_tol
        t = np.unique(q.frames[qi[near]])
        t = t[_supported(t, cfg)]
        if len(t) == 0 or (t[-1] - t[0]) / PK_FRAME_RATE < cfg.min_span_s:
            return None
        return BackgroundMatch(slot, k + lo, z, int(h[k] - null), t)


def _key_space(cfg: BackgroundThresholds) -> range:
    return range(256 * _DF_SPAN * 16)


def _candidate_slots(
    slots: np.ndarray, offsets: np.ndarray, cfg: BackgroundThresholds
) -> list[int]:
    """Works of the (work, offset bucket)s with the most agreeing query pairs."""
    scored: list[tuple[int, int]] = []
    for phase in (0, cfg.bucket // 2):
        # (a query pair meeting two stored pairs of one key in one cell is rare: not deduplicated)
        cell = slots * (1 << 32) + (offsets + phase) // cfg.bucket + (1 << 31)
        cells, counts = np.unique(cell, return_counts=True)
        good = counts >= cfg.min_votes
        cells, counts = cells[good], counts[good]
        for i in np.argsort(-counts, kind="stable")[: cfg.max_candidates]:
            scored.append((int(counts[i]), int(cells[i] >> 32)))
    scored.sort(key=lambda s: -s[0])
    out: list[int] = []
    for _count, slot in scored[: cfg.max_candidates]:
        if slot not in out:
            out.append(slot)
    return out


def _supported(t: np.ndarray, cfg: BackgroundThresholds) -> np.ndarray:
    """Mask of the sorted query frames ``t`` inside the span: groups of fewer than ``edge_min``
    at either end, cut off from the rest by more than ``edge_gap_s``, are dropped."""
    cuts = np.flatnonzero(np.diff(t) > cfg.edge_gap_s * PK_FRAME_RATE) + 1
    groups = np.split(np.arange(len(t)), cuts)
    lo, hi = 0, len(groups) - 1
    while lo < hi and len(groups[lo]) < cfg.edge_min:
        lo += 1
    while hi > lo and len(groups[hi]) < cfg.edge_min:
        hi -= 1
    keep = np.zeros(len(t), bool)
    keep[groups[lo][0] : groups[hi][-1] + 1] = True
    return keep
