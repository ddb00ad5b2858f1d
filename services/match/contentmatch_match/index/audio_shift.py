"""Pitch- and speed-invariant audio signal: triplets of log-frequency spectral peaks.

The fingerprint service sends the spectral peaks of a recording on a log-frequency axis
(``AudioFingerprint.extra["peaks"]``, see ``contentmatch_shared.peaks_payload``). Here every peak
(the anchor) is joined with pairs of the peaks that follow it within ``_SH.dt_max`` frames; each
triplet (t1, f1), (t2, f2), (t3, f3) is hashed by

* ``f2 - f1`` and ``f3 - f2`` in semitones: a pitch shift adds the same amount to every
  log-frequency, so the differences do not change;
* ``(t2 - t1) / (t3 - t1)``: a uniform time scaling (time-stretch, or the speed change of a
  resampled "sped-up" copy) multiplies every time difference by the same factor.

So a copy that is pitch-shifted, time-stretched or played faster produces the same keys as the
original. The quantised values sit in one integer key (``_key``); a query probes the neighbouring
key too when a value lies near a quantisation boundary. The index is an inverted LSM of sorted
(key, entry) runs plus fixed-size per-entry arrays (anchor frame, anchor log-frequency, span).

Verification: a query triplet matching a reference triplet implies a pitch shift
``f1_ref - f1_query`` and, with the anchors' times, one point of the affine time relation
``t_ref = offset + scale * t_query``. Matches are grouped by work and pitch shift; inside a group a
grid of scales (``SH_SCALES``) and offset buckets finds the consistent set, which is refined by a
least-squares fit. Accepted when ``_SH.min_inliers`` distinct query triplets agree on one (pitch,
scale, offset) and they do not come from silence or one held frame (the Chromaprint static-item
mask of both sides, supplied by the caller). The match reports the time scale (reference seconds
per query second), the pitch shift of the query relative to the reference, and the segments.

All thresholds are in ``audio_config.AUDIO_MATCH.triplets``; docs/audio.md tells how they were set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from contentmatch_shared.peaks_payload import PK_FRAME_RATE, decode_peaks

from .audio_config import AUDIO_MATCH

# Thresholds: audio_config.AUDIO_MATCH.triplets (docs/audio.md tells how they were set).
_SH = AUDIO_MATCH.triplets
SH_SCALES = np.exp(
    np.arange(np.log(_SH.scale_min), np.log(_SH.scale_max) + 1e-9, _SH.scale_log_step)
)

_N_DF = 2 * _SH.df_max + 1
N_KEYS = _N_DF * _N_DF * _SH.ratio_levels
_F1_UNITS = 64  # per semitone, for the stored anchor log-frequency


@dataclass
class Triplets:
    """Triplets of one recording: parallel arrays, one row per triplet."""

    t1: np.ndarray  # anchor frame (int64)
    f1: np.ndarray  # anchor log-frequency, semitones (float32)
    span: np.ndarray  # t3 - t1, frames (int64)
    d1: np.ndarray  # f2 - f1, semitones (float32)
    d2: np.ndarray  # f3 - f2
    ratio: np.ndarray  # (t2 - t1) / (t3 - t1)

    def __len__(self) -> int:
        return len(self.t1)


def triplets(frames: np.ndarray, semis: np.ndarray) -> Triplets:
    """All triplets of time-sorted peaks (anchor + two of its next ``_SH.fanout`` followers)."""
    t = np.asarray(frames, dtype=np.int64)
    f = np.asarray(semis, dtype=np.float32)
    n = len(t)
    dtypes = (np.int64, np.float32, np.int64, np.float32, np.float32, np.float32)
    empty = Triplets(*(np.zeros(0, d) for d in dtypes))
    if n < 3:
        return empty
    follow = np.full((n, _SH.fanout), -1, np.int64)
    taken = np.zeros(n, np.int64)
    i = np.arange(n)
    for k in range(1, 6 * _SH.fanout + 1):
        if k >= n:
            break
        dt = t[k:] - t[:-k]
        ok = (dt >= _SH.dt_min) & (dt <= _SH.dt_max) & (np.abs(f[k:] - f[:-k]) <= _SH.df_max)
        ok &= taken[:-k] < _SH.fanout
        idx = np.flatnonzero(ok)
        follow[idx, taken[idx]] = idx + k
        taken[idx] += 1
    rows_a, rows_j, rows_k = [], [], []
    for a in range(_SH.fanout):
        for b in range(a + 1, _SH.fanout):
            j, k = follow[:, a], follow[:, b]
            ok = (j >= 0) & (k >= 0)
            jj, kk = np.where(ok, j, 0), np.where(ok, k, 0)
            ok &= (t[kk] - t[jj] >= _SH.dt_min) & (t[kk] - t[i] >= _SH.min_span)
            ok &= np.abs(f[kk] - f[jj]) <= _SH.df_max
            sel = np.flatnonzero(ok)
            rows_a.append(sel)
            rows_j.append(jj[sel])
            rows_k.append(kk[sel])
    a_, j_, k_ = (np.concatenate(r) for r in (rows_a, rows_j, rows_k))
    if len(a_) == 0:
        return empty
    order = np.argsort(t[a_], kind="stable")
    a_, j_, k_ = a_[order], j_[order], k_[order]
    span = t[k_] - t[a_]
    return Triplets(
        t1=t[a_],
        f1=f[a_],
        span=span,
        d1=f[j_] - f[a_],
        d2=f[k_] - f[j_],
        ratio=((t[j_] - t[a_]) / span).astype(np.float32),
    )


def _key(q1: np.ndarray, q2: np.ndarray, qr: np.ndarray) -> np.ndarray:
    return ((q1 * _N_DF + q2) * _SH.ratio_levels + qr).astype(np.uint32)


def reference_keys(tr: Triplets) -> np.ndarray:
    q1 = np.clip(np.rint(tr.d1), -_SH.df_max, _SH.df_max).astype(np.int64) + _SH.df_max
    q2 = np.clip(np.rint(tr.d2), -_SH.df_max, _SH.df_max).astype(np.int64) + _SH.df_max
    qr = np.clip((tr.ratio * _SH.ratio_levels).astype(np.int64), 0, _SH.ratio_levels - 1)
    return _key(q1, q2, qr)


def query_keys(tr: Triplets) -> tuple[np.ndarray, np.ndarray]:
    """(triplet index, key): the reference key plus neighbours for values near a boundary."""
    n = len(tr)
    idx = np.arange(n)

    def options(
        v: np.ndarray, lo: int, hi: int, rounding: bool
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        base = np.rint(v) if rounding else np.floor(v)
        frac = v - base  # rounding: [-0.5, 0.5]; floor: [0, 1)
        if rounding:
            alt = base + np.sign(frac)
            near = np.abs(frac) > 0.5 - _SH.probe_margin
        else:
            alt = np.where(frac < 0.5, base - 1, base + 1)
            near = (frac < _SH.probe_margin) | (frac > 1 - _SH.probe_margin)
        b = np.clip(base, lo, hi).astype(np.int64)
        a = np.clip(alt, lo, hi).astype(np.int64)
        return [(np.ones(n, bool), b), (near & (a != b), a)]

    o1 = options(tr.d1, -_SH.df_max, _SH.df_max, True)
    o2 = options(tr.d2, -_SH.df_max, _SH.df_max, True)
    o3 = options(tr.ratio * _SH.ratio_levels, 0, _SH.ratio_levels - 1, False)
    out_i, out_k = [], []
    for m1, v1 in o1:
        for m2, v2 in o2:
            for m3, v3 in o3:
                m = m1 & m2 & m3
                out_i.append(idx[m])
                out_k.append(_key(v1[m] + _SH.df_max, v2[m] + _SH.df_max, v3[m]))
    return np.concatenate(out_i), np.concatenate(out_k)


def decode_triplets(extra: object) -> Triplets | None:
    """Triplets of a fingerprint's ``extra`` (None when it has no peaks: older payloads)."""
    if not isinstance(extra, dict) or not extra.get("peaks"):
        return None
    frames, semis = decode_peaks(str(extra["peaks"]))
    return triplets(frames, semis)


@dataclass
class ShiftMatch:
    slot: int
    n: int
    scale: float  # reference seconds per query second
    pitch: float  # semitones of the query above the reference
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float


class TripletIndex:
    """Inverted index of triplet keys for many works; the caller (``AudioIndex``) locks it.

    Works are identified by the caller's slot number; positions are global entry numbers.
    """

    def __init__(self, runs_factory: Callable[[], object]) -> None:
        self._runs = runs_factory()
        self._t1 = np.zeros(0, np.int32)  # local anchor frame
        self._f1 = np.zeros(0, np.uint16)  # anchor log-frequency, 1/64 semitone
        self._span = np.zeros(0, np.uint8)
        self._starts = np.zeros(0, np.int64)  # first entry of every slot (slots in add order)
        self._used = 0
        self._frames: dict[int, int] = {}  # slot -> frames (duration) of the work

    def size(self) -> int:
        return self._used

    def nbytes(self) -> int:
        return int(
            self._runs.nbytes()
            + self._t1.nbytes
            + self._f1.nbytes
            + self._span.nbytes
            + self._starts.nbytes
        )

    def _grow(self, need: int) -> None:
        if need <= len(self._t1):
            return
        cap = max(need, 2 * len(self._t1), 1 << 14)
        for name in ("_t1", "_f1", "_span"):
            old = getattr(self, name)
            new = np.zeros(cap, old.dtype)
            new[: self._used] = old[: self._used]
            setattr(self, name, new)

    def add(self, slot: int, tr: Triplets | None) -> None:
        """Entries of ``slot``, which must be the next slot number (entries stay in slot order,
        so an entry's slot is found from its position)."""
        if slot != len(self._starts):
            raise ValueError(f"slot {slot} added out of order")
        self._starts = np.append(self._starts, self._used)
        n = 0 if tr is None else len(tr)
        if n == 0:
            return
        a = self._used
        self._grow(a + n)
        self._t1[a : a + n] = tr.t1
        self._f1[a : a + n] = np.clip(np.rint(tr.f1 * _F1_UNITS), 0, 65535)
        self._span[a : a + n] = np.clip(tr.span, 0, 255)
        self._used = a + n
        self._runs.add(reference_keys(tr), np.arange(a, a + n))

    def _slot_of(self, pos: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._starts, pos, "right") - 1

    def compact(self, alive: np.ndarray) -> None:
        """Drop the entries of dead slots; the live slots keep their order (renumbered densely
        by the caller the same way)."""
        counts = np.diff(np.append(self._starts, self._used))
        keep = np.repeat(alive, counts)
        new_pos = np.cumsum(keep) - 1
        self._runs.filter(lambda p: keep[p.astype(np.int64)])
        self._runs.remap(lambda p: new_pos[p.astype(np.int64)])
        for name in ("_t1", "_f1", "_span"):
            setattr(self, name, getattr(self, name)[: self._used][keep].copy())
        live = counts[alive]
        self._starts = np.concatenate([[0], np.cumsum(live)[:-1]]).astype(np.int64)
        self._used = int(live.sum())

    def search(
        self,
        q: Triplets,
        alive: np.ndarray,
        static_of: Callable[[int, np.ndarray, bool], np.ndarray],
        query_duration_s: float,
        ref_duration_s: Callable[[int], float],
    ) -> list[ShiftMatch]:
        """Matches of the query triplets. ``static_of(slot, frames, is_query)`` flags frames that
        lie in silence / one held frame (no evidence) on the query (slot ignored) or reference."""
        if len(q) == 0 or self._used == 0:
            return []
        qi_all, keys = query_keys(q)
        cap = max(_SH.key_cap_min, _SH.key_cap_factor * self._used // N_KEYS)
        k_idx, pos = self._runs.lookup(keys, cap)
        if len(k_idx) == 0:
            return []
        qi = qi_all[k_idx]
        # one pair per (query triplet, reference entry) even if several probes reached it
        pair = np.unique(qi * np.int64(self._used + 1) + pos)
        qi, pos = pair // (self._used + 1), pair % (self._used + 1)
        slot = self._slot_of(pos)
        ok = alive[slot]
        pitch = self._f1[pos].astype(np.float32) / _F1_UNITS - q.f1[qi]  # ref - query
        ok &= np.abs(pitch) <= _SH.pitch_max
        ratio = self._span[pos].astype(np.float32) / q.span[qi]
        ok &= (ratio >= _SH.scale_min * 0.85) & (ratio <= _SH.scale_max / 0.85)
        qi, pos, slot, pitch = qi[ok], pos[ok], slot[ok], pitch[ok]
        if len(qi) < _SH.min_inliers:
            return []
        pb = np.floor(pitch / _SH.pitch_bin).astype(np.int64)
        n_pb = int(2 * _SH.pitch_max / _SH.pitch_bin) + 4
        group = slot.astype(np.int64) * n_pb + (pb + n_pb // 2)
        ug, counts = np.unique(group, return_counts=True)
        # a group and its upper neighbour pitch bucket together (a shift near a bucket edge)
        nxt = np.searchsorted(ug, ug + 1)
        nxt_c = np.where((nxt < len(ug)) & (ug[np.minimum(nxt, len(ug) - 1)] == ug + 1),
                         counts[np.minimum(nxt, len(ug) - 1)], 0)  # fmt: skip
        pair_counts = counts + nxt_c
        order = np.argsort(-pair_counts, kind="stable")
        out: list[ShiftMatch] = []
        done: set[int] = set()
        tried = 0
        for gi in order[: 3 * _SH.max_candidates]:
            if pair_counts[gi] < _SH.min_inliers or tried >= _SH.max_candidates:
                break
            g = int(ug[gi])
            if g in done:
                continue
            done.update((g, g + 1))
            tried += 1
            sel = np.flatnonzero((group == g) | (group == g + 1))
            m = self._verify(q, qi[sel], pos[sel], pitch[sel], int(slot[sel[0]]), static_of,
                             query_duration_s, ref_duration_s)  # fmt: skip
            if m is not None and not any(
                o.slot == m.slot and abs(o.query_start - m.query_start) < 1.0 for o in out
            ):
                out.append(m)
        return out

    def _verify(
        self,
        q: Triplets,
        qi: np.ndarray,
        pos: np.ndarray,
        pitch: np.ndarray,
        slot: int,
        static_of: Callable[[int, np.ndarray, bool], np.ndarray],
        query_duration_s: float,
        ref_duration_s: Callable[[int], float],
    ) -> ShiftMatch | None:
        tq = q.t1[qi].astype(np.float64)
        tr = self._t1[pos].astype(np.float64)
        # Hough over (scale, offset): for every scale of the grid, the offsets in buckets
        off = tr[None, :] - SH_SCALES[:, None] * tq[None, :]
        best_n, best = 0, None
        for phase in (0.0, _SH.offset_bin / 2):
            b = np.floor((off + phase) / _SH.offset_bin).astype(np.int64)
            b -= b.min()
            width = int(b.max()) + 1
            cell = np.arange(len(SH_SCALES))[:, None] * width + b
            cnt = np.bincount(cell.ravel())
            k = int(np.argmax(cnt))
            if cnt[k] > best_n:
                best_n = int(cnt[k])
                si = k // width
                best = (si, cell[si] == k)
        if best is None or best_n < _SH.min_inliers:
            return None
        si, mask = best
        # least-squares refinement on the bucket's pairs, then inliers by residual
        scale = float(SH_SCALES[si])
        offset = float(np.median(tr[mask] - scale * tq[mask]))
        for _ in range(2):
            res = np.abs(tr - (offset + scale * tq))
            inl = res <= _SH.fit_tol
            if inl.sum() < _SH.min_inliers:
                return None
            if np.ptp(tq[inl]) >= 2 * PK_FRAME_RATE:
                s, o = np.polyfit(tq[inl], tr[inl], 1)
                if _SH.scale_min <= s <= _SH.scale_max:
                    scale, offset = float(s), float(o)
        res = np.abs(tr - (offset + scale * tq))
        inl = res <= _SH.fit_tol
        # one vote per query triplet; silence / held frames on either side are no evidence
        live = inl & ~static_of(-1, tq, True) & ~static_of(slot, tr, False)
        idx = np.flatnonzero(live)
        _, first = np.unique(qi[idx], return_index=True)
        idx = idx[first]
        n = len(idx)
        if n < _SH.min_inliers or len(np.unique(tq[idx])) < _SH.min_anchors:
            return None
        t_q = tq[idx]
        q0, q1 = float(t_q.min()) / PK_FRAME_RATE, float(t_q.max() + q.span[qi[idx]].max())
        q1 = min(q1 / PK_FRAME_RATE, float(t_q.max()) / PK_FRAME_RATE + _SH.dt_max / PK_FRAME_RATE)
        qs = 0.0 if q0 < 1.0 else q0 - _SH.edge_pad_s
        qe = query_duration_s if query_duration_s - q1 < 1.0 else q1 + _SH.edge_pad_s
        qe = min(qe, query_duration_s)
        off_s = offset / PK_FRAME_RATE
        rs = max(0.0, off_s + scale * qs)
        re = min(ref_duration_s(slot), off_s + scale * qe)
        return ShiftMatch(
            slot=slot,
            n=n,
            scale=scale,
            pitch=float(-np.median(pitch[idx])),
            query_start=round(qs, 3),
            query_end=round(qe, 3),
            ref_start=round(rs, 3),
            ref_end=round(re, 3),
            score=n / (n + _SH.score_half),
        )
