"""Audio index: Chromaprint offset voting + bit-error verification, with a landmark second signal.

Two signals, searched independently and merged per work:

``chromaprint`` (``AudioFingerprint.chromaprint``, ~8.08 raw 32-bit items per second)
    Inverted index from the top ``_CP.key_bits`` bits of every item (the most robust bits) to the
    item's global position. A query votes for diagonals ``ref_position - query_position`` in coarse
    buckets (so +-3 % tempo drift still piles up in one bucket); the best buckets are verified on
    the aligned stretch: a small grid of time-scale factors and offsets is tried, the per-item bit
    error rate (BER) is smoothed, and runs below ``_CP.seg_ber`` become segments. Strong on clean /
    MP3 / noise / volume / tempo; weak on band-limited audio (phone) where chroma changes.

``landmarks`` (``AudioFingerprint.extra["landmarks"]``, see the fingerprint signal)
    Spectral-peak pairs inside 300-3400 Hz hashed as (f1, df, dt), Shazam / audfprint style. Voting
    on time-offset buckets, accepted on the number of distinct agreeing hashes. Survives telephone
    band-pass and echo, where Chromaprint's chroma does not.

Storage (both signals): an LSM of sorted runs of (key, global position) pairs (uint16/uint32 keys,
uint32 positions) searched with ``np.searchsorted``; each add is a small run, runs merge
geometrically, removed works are filtered at query time and purged by compaction. Chromaprint items
are kept in one arena (uint32) for verification. Everything is guarded by one lock.

All thresholds live in ``audio_config.AUDIO_MATCH``.
"""

from __future__ import annotations

import base64
import threading
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import audio_background as bg
from .audio_config import AUDIO_MATCH
from .audio_shift import N_KEYS as SH_N_KEYS
from .audio_shift import TripletIndex, Triplets, decode_triplets
from .base import IndexHit, Segment

# Thresholds: audio_config.AUDIO_MATCH (docs/audio.md tells how they were set).
_CP = AUDIO_MATCH.chromaprint
_LM = AUDIO_MATCH.landmarks
_SH = AUDIO_MATCH.triplets
CP_SCALES = np.round(np.arange(_CP.scale_min, _CP.scale_max + 1e-4, _CP.scale_step), 4)

# Landmark times are STFT frames of the fingerprint signal (11025 Hz / hop 256 ~ 43.07 frames/s).
LM_FRAME_RATE = 11025 / 256

# Item geometry of Chromaprint's default algorithm at 11025 Hz.
CP_DEFAULT_RATE = 11025 / 1365
CP_ITEM_SPAN_S = (15 * 1365 + 4096) / 11025  # audio seconds that one item looks at (~2.23 s)

_SLOT_GAP = 64  # unused positions between works so diagonals never straddle two works
_COMPACT_DEAD_FRACTION = 0.3
_MAX_ADDR = (1 << 32) - 1


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


# ------------------------------------------------------------------------------ payload decoding


def _decode_u32(payload: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(payload), dtype="<u4").astype(np.uint32)


def decode_landmarks(payload: str) -> tuple[np.ndarray, np.ndarray]:
    """``extra["landmarks"]``: base64(zlib(hash u32 LE[n] + frame-delta u32 LE[n])), time-sorted.

    Returns (hashes, frames); frames are STFT frames (``LM_FRAME_RATE`` per second).
    """
    raw = zlib.decompress(base64.b64decode(payload))
    arr = np.frombuffer(raw, dtype="<u4").astype(np.uint32)
    n = len(arr) // 2
    return arr[:n], np.cumsum(arr[n : 2 * n], dtype=np.int64).astype(np.uint32)


@dataclass
class _Query:
    items: np.ndarray
    item_rate: float
    duration_s: float
    lm_hashes: np.ndarray | None
    lm_frames: np.ndarray | None
    triplets: Triplets | None = None
    background: bg.BackgroundPeaks | None = None


def _parse(fingerprint: object) -> _Query:
    if hasattr(fingerprint, "model_dump"):
        fingerprint = fingerprint.model_dump()
    if not isinstance(fingerprint, dict):
        raise TypeError("AudioIndex expects an AudioFingerprint (or its dict)")
    items = _decode_u32(fingerprint.get("chromaprint") or "")
    rate = float(fingerprint.get("item_rate") or CP_DEFAULT_RATE)
    duration = float(fingerprint.get("duration_s") or (len(items) / rate + CP_ITEM_SPAN_S))
    extra = fingerprint.get("extra") or {}
    lm_h = lm_f = None
    if isinstance(extra, dict) and extra.get("landmarks"):
        lm_h, lm_f = decode_landmarks(str(extra["landmarks"]))
    return _Query(items, rate, duration, lm_h, lm_f, decode_triplets(extra), bg.decode(extra))


# ---------------------------------------------------------------------------- inverted LSM runs


class _Runs:
    """Sorted runs of (key, position); lookups by searchsorted, geometric merging."""

    def __init__(self, key_dtype: type) -> None:
        self.key_dtype = key_dtype
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, keys: np.ndarray, positions: np.ndarray) -> None:
        if len(keys) == 0:
            return
        order = np.argsort(keys, kind="stable")
        self.runs.append((keys[order].astype(self.key_dtype), positions[order].astype(np.uint32)))
        while len(self.runs) > 1 and len(self.runs[-1][0]) * 2 >= len(self.runs[-2][0]):
            k2, p2 = self.runs.pop()
            k1, p1 = self.runs.pop()
            k = np.concatenate([k1, k2])
            p = np.concatenate([p1, p2])
            order = np.argsort(k, kind="stable")
            self.runs.append((k[order], p[order]))

    def filter(self, keep_position) -> None:
        """Keep pairs whose position passes ``keep_position(positions) -> mask`` (compaction)."""
        new = []
        for k, p in self.runs:
            m = keep_position(p)
            if m.any():
                new.append((k[m], p[m]))
        self.runs = sorted(new, key=lambda r: -len(r[0]))

    def remap(self, fn) -> None:
        self.runs = [(k, fn(p).astype(np.uint32)) for k, p in self.runs]

    def size(self) -> int:
        return sum(len(k) for k, _ in self.runs)

    def nbytes(self) -> int:
        return sum(k.nbytes + p.nbytes for k, p in self.runs)

    def lookup(self, qkeys: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
        """All (query index, position) pairs whose key matches; keys with > cap postings skipped."""
        if not self.runs or len(qkeys) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        qk = qkeys.astype(self.key_dtype)
        spans = []
        total = np.zeros(len(qk), np.int64)
        for k, p in self.runs:
            lo = np.searchsorted(k, qk, "left")
            hi = np.searchsorted(k, qk, "right")
            spans.append((p, lo, hi))
            total += hi - lo
        ok = total <= cap
        out_q, out_p = [], []
        for p, lo, hi in spans:
            cnt = np.where(ok, hi - lo, 0)
            n = int(cnt.sum())
            if n == 0:
                continue
            qidx = np.repeat(np.arange(len(qk)), cnt)
            starts = np.repeat(lo - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt)
            idx = starts + np.arange(n)
            out_q.append(qidx)
            out_p.append(p[idx].astype(np.int64))
        if not out_q:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(out_q), np.concatenate(out_p)


# --------------------------------------------------------------------------------------- index


@dataclass
class _Slot:
    work_id: str
    cp_start: int
    cp_len: int
    lm_start: int
    lm_len: int  # frames of the address range reserved for landmarks
    item_rate: float
    alive: bool = True


@dataclass
class _Match:
    work_id: str
    signal: str
    score: float
    distance: float
    segments: list[Segment]
    evidence: dict[str, object] = field(default_factory=dict)


class AudioIndex:
    """Thread-safe audio index (Chromaprint + landmarks); implements ``MediaIndex``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._slots: list[_Slot] = []
        self._by_work: dict[str, int] = {}
        self._cp_starts = np.zeros(0, np.int64)  # per slot, sorted (slots are appended in order)
        self._lm_starts = np.zeros(0, np.int64)
        self._alive = np.zeros(0, bool)
        self._arena = np.zeros(1 << 16, np.uint32)
        self._arena_used = 0
        self._lm_next = 0
        self._cp = _Runs(np.uint16 if _CP.key_bits <= 16 else np.uint32)
        self._lm = _Runs(np.uint32)
        # third signal: pitch/speed-invariant peak triplets (index/audio_shift.py)
        self._sh = TripletIndex(lambda: _Runs(np.uint16 if SH_N_KEYS <= 1 << 16 else np.uint32))
        # fourth signal: music under a louder foreground (index/audio_background.py)
        self._bg = bg.BackgroundIndex(lambda: _Runs(np.uint32))
        self._dead_items = 0

    # ---------------------------------------------------------------- MediaIndex protocol

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_work)

    def memory_bytes(self) -> int:
        with self._lock:
            return int(
                self._arena.nbytes
                + self._cp.nbytes()
                + self._lm.nbytes()
                + self._sh.nbytes()
                + self._bg.nbytes()
                + self._cp_starts.nbytes
                + self._lm_starts.nbytes
                + self._alive.nbytes
                + len(self._slots) * 200
            )

    def add(self, work_id: str, fingerprint: object) -> None:
        q = _parse(fingerprint)
        with self._lock:
            self._remove_locked(work_id)
            self._ensure_address_space(len(q.items), q)
            n = len(q.items)
            cp_start = self._arena_used
            self._grow_arena(cp_start + n + _SLOT_GAP)
            self._arena[cp_start : cp_start + n] = q.items
            self._arena_used = cp_start + n + _SLOT_GAP
            lm_len = 0
            if q.lm_frames is not None and len(q.lm_frames):
                lm_len = int(q.lm_frames.max()) + 1
            lm_start = self._lm_next
            self._lm_next = lm_start + lm_len + _SLOT_GAP * 8
            slot_id = len(self._slots)
            self._slots.append(_Slot(work_id, cp_start, n, lm_start, lm_len, q.item_rate))
            self._by_work[work_id] = slot_id
            self._cp_starts = np.append(self._cp_starts, cp_start)
            self._lm_starts = np.append(self._lm_starts, lm_start)
            self._alive = np.append(self._alive, True)
            if n:
                self._cp.add(
                    q.items >> np.uint32(32 - _CP.key_bits), np.arange(cp_start, cp_start + n)
                )
            if lm_len:
                self._lm.add(
                    q.lm_hashes & np.uint32((1 << _LM.key_bits) - 1),
                    q.lm_frames.astype(np.int64) + lm_start,
                )
            self._sh.add(slot_id, q.triplets)
            self._bg.add(slot_id, _live_background(q))

    def remove(self, work_id: str) -> None:
        with self._lock:
            self._remove_locked(work_id)

    def search(self, fingerprint: object, limit: int = 10) -> list[IndexHit]:
        q = _parse(fingerprint)
        with self._lock:
            if not self._by_work:
                return []
            matches = self._search_chromaprint(q) + self._search_landmarks(q)
            # the triplets are for pitch / time-scale changes: not needed where Chromaprint
            # already covers the whole query at its own alignment
            if _covered(matches, q.duration_s) < _SH.skip_coverage:
                matches += self._search_triplets(q)
            if not matches and AUDIO_MATCH.background.enabled and q.background is not None:
                matches = self._search_background(q)  # registered music in the background?
            merged = _merge_matches(matches)
            self._resolve_overlaps(q, merged)
        merged.sort(key=lambda m: -m.score)
        return [
            IndexHit(
                work_id=m.work_id,
                score=float(np.clip(m.score, 0.0, 1.0)),
                signal=m.signal,
                distance=float(m.distance),
                evidence=m.evidence,
                segments=m.segments,
            )
            for m in merged[: max(0, int(limit))]
        ]

    # ---------------------------------------------------------------- maintenance

    def _remove_locked(self, work_id: str) -> None:
        slot_id = self._by_work.pop(work_id, None)
        if slot_id is None:
            return
        slot = self._slots[slot_id]
        slot.alive = False
        self._alive[slot_id] = False
        self._dead_items += slot.cp_len
        if self._dead_items > _COMPACT_DEAD_FRACTION * max(1, self._arena_used):
            self._compact()

    def _grow_arena(self, need: int) -> None:
        if need > len(self._arena):
            new = np.zeros(max(need, 2 * len(self._arena)), np.uint32)
            new[: self._arena_used] = self._arena[: self._arena_used]
            self._arena = new

    def _ensure_address_space(self, n_items: int, q: _Query) -> None:
        lm_need = int(q.lm_frames.max()) + 1 if q.lm_frames is not None and len(q.lm_frames) else 0
        if (
            self._arena_used + n_items + _SLOT_GAP >= _MAX_ADDR
            or self._lm_next + lm_need + 8 * _SLOT_GAP >= _MAX_ADDR
        ):
            self._compact()

    def _compact(self) -> None:
        """Drop removed works: purge their postings and renumber positions densely."""
        live = [i for i, s in enumerate(self._slots) if s.alive]
        cp_shift = np.zeros(len(self._slots), np.int64)
        lm_shift = np.zeros(len(self._slots), np.int64)
        new_arena = np.zeros(
            max(1 << 16, sum(self._slots[i].cp_len + _SLOT_GAP for i in live)), np.uint32
        )
        cp_pos = lm_pos = 0
        for i in live:
            s = self._slots[i]
            new_arena[cp_pos : cp_pos + s.cp_len] = self._arena[s.cp_start : s.cp_start + s.cp_len]
            cp_shift[i] = cp_pos - s.cp_start
            lm_shift[i] = lm_pos - s.lm_start
            cp_pos += s.cp_len + _SLOT_GAP
            lm_pos += s.lm_len + 8 * _SLOT_GAP
        alive = self._alive.copy()
        cp_starts, lm_starts = self._cp_starts.copy(), self._lm_starts.copy()

        def slot_of(starts: np.ndarray, p: np.ndarray) -> np.ndarray:
            return np.searchsorted(starts, p.astype(np.int64), "right") - 1

        self._cp.filter(lambda p: alive[slot_of(cp_starts, p)])
        self._lm.filter(lambda p: alive[slot_of(lm_starts, p)])
        self._cp.remap(lambda p: p.astype(np.int64) + cp_shift[slot_of(cp_starts, p)])
        self._lm.remap(lambda p: p.astype(np.int64) + lm_shift[slot_of(lm_starts, p)])
        self._sh.compact(alive)
        self._bg.compact(alive)

        slots = []
        self._by_work = {}
        for i in live:
            s = self._slots[i]
            s.cp_start += int(cp_shift[i])
            s.lm_start += int(lm_shift[i])
            self._by_work[s.work_id] = len(slots)
            slots.append(s)
        self._slots = slots
        self._cp_starts = np.array([s.cp_start for s in slots], np.int64)
        self._lm_starts = np.array([s.lm_start for s in slots], np.int64)
        self._alive = np.ones(len(slots), bool)
        self._arena = new_arena
        self._arena_used = cp_pos
        self._lm_next = lm_pos
        self._dead_items = 0

    # ---------------------------------------------------------------- chromaprint

    def _search_chromaprint(self, q: _Query) -> list[_Match]:
        items = q.items
        nq = len(items)
        if nq < _CP.min_seg_items or self._cp.size() == 0:
            return []
        cap = max(_CP.key_cap_min, _CP.key_cap_factor * self._cp.size() // (1 << _CP.key_bits))
        qi, pos = self._cp.lookup(items >> np.uint32(32 - _CP.key_bits), cap)
        if len(qi) == 0:
            return []
        q_static = static_items(items)
        diag = pos - qi + nq  # >= 0
        cands = _top_buckets(diag, qi, nq, _CP.bucket, _CP.min_votes, _CP.max_candidates + nq // 40)
        matches: list[_Match] = []
        seen: list[tuple[int, float, float, int, int]] = []  # (slot, offset, scale, j0, j1)
        for sel in cands:
            j, p = qi[sel], pos[sel]
            slot_id = int(np.searchsorted(self._cp_starts, int(np.median(p)), "right") - 1)
            if slot_id < 0 or not self._alive[slot_id]:
                continue
            slot = self._slots[slot_id]
            local = p - slot.cp_start
            inside = (local >= 0) & (local < slot.cp_len)
            if inside.sum() < _CP.min_votes:
                continue
            ref = self._arena[slot.cp_start : slot.cp_start + slot.cp_len]
            m = _verify_chromaprint(items, ref, j[inside], local[inside])
            if m is None:
                continue
            off, scale, errs = m
            errs = _mask_static(errs, q_static, ref, off, scale)
            for j0, j1, ber in _runs_below(errs):
                key = (slot_id, off, scale, j0, j1)
                if any(
                    s == slot_id
                    and abs((o + sc * j0) - (off + scale * j0)) < 3
                    and a <= j1
                    and j0 <= b
                    for s, o, sc, a, b in seen
                ):
                    continue
                seen.append(key)
                seg = _cp_segment(
                    j0,
                    j1,
                    nq,
                    off,
                    scale,
                    q.item_rate,
                    q.duration_s,
                    slot.cp_len / slot.item_rate + CP_ITEM_SPAN_S,
                )
                matches.append(
                    _Match(
                        slot.work_id,
                        "chromaprint",
                        1.0 - ber / _CP.ber_random,
                        ber,
                        [seg],
                        {
                            "chromaprint_ber": round(ber, 4),
                            "time_scale": round(scale, 4),
                            "items": j1 - j0 + 1,
                        },
                    )
                )
        return matches

    # ---------------------------------------------------------------- triplets

    def _search_triplets(self, q: _Query) -> list[_Match]:
        if q.triplets is None or len(q.triplets) == 0 or self._sh.size() == 0:
            return []
        q_static = static_items(q.items)

        def static_of(slot_id: int, frames: np.ndarray, is_query: bool) -> np.ndarray:
            if is_query:
                return _frames_static(frames, q_static, q.item_rate)
            slot = self._slots[slot_id]
            return _frames_static(frames, self._slot_static(slot), slot.item_rate)

        def ref_duration(slot_id: int) -> float:
            slot = self._slots[slot_id]
            return slot.cp_len / slot.item_rate + CP_ITEM_SPAN_S

        out = []
        for m in self._sh.search(q.triplets, self._alive, static_of, q.duration_s, ref_duration):
            seg = Segment(
                query_start=m.query_start,
                query_end=m.query_end,
                ref_start=m.ref_start,
                ref_end=m.ref_end,
            )
            evidence: dict[str, object] = {
                "triplet_matches": m.n,
                "time_scale": round(m.scale, 4),
                "pitch_shift_semitones": round(m.pitch, 2),
            }
            work_id = self._slots[m.slot].work_id
            out.append(_Match(work_id, "triplets", m.score, 1.0 - m.score, [seg], evidence))
        return out

    # ---------------------------------------------------------------- landmarks

    def _search_background(self, q: _Query) -> list[_Match]:
        peaks = _live_background(q)
        if peaks is None:
            return []
        out = []
        for m in self._bg.search(peaks, self._alive):
            slot = self._slots[m.slot]
            fr = bg.PK_FRAME_RATE
            pad = 0.25  # s: the edges of the span are a little inside the audio
            qs = max(0.0, m.query_frames[0] / fr - pad)
            qe = min(q.duration_s, m.query_frames[-1] / fr + pad + 1024 / 11025)
            if qs < 1.0:
                qs = 0.0
            if q.duration_s - qe < 1.0:
                qe = q.duration_s
            off = m.offset / fr
            seg = Segment(
                query_start=round(qs, 3),
                query_end=round(qe, 3),
                ref_start=round(max(0.0, qs + off), 3),
                ref_end=round(max(0.0, qe + off), 3),
            )
            score = m.z / (m.z + AUDIO_MATCH.background.score_half)
            evidence: dict[str, object] = {
                "background_z": round(float(m.z), 2),
                "background_matches": m.count,
            }
            out.append(_Match(slot.work_id, "background", score, 1.0 - score, [seg], evidence))
        return out

    def _search_landmarks(self, q: _Query) -> list[_Match]:
        """Landmark voting: distinct agreeing hashes per (work, offset bucket)."""
        q_hashes, q_frames = q.lm_hashes, q.lm_frames
        min_matches, min_density, max_cands = _LM.min_matches, _LM.min_density, _LM.max_candidates
        signal, bucket = "landmarks", _LM.bucket
        if q_hashes is None or q_frames is None or len(q_hashes) == 0 or self._lm.size() == 0:
            return []
        hashes = q_hashes & np.uint32((1 << _LM.key_bits) - 1)
        qt = q_frames.astype(np.int64)
        cap = max(_LM.key_cap_min, _LM.key_cap_factor * self._lm.size() // (1 << _LM.key_bits))
        qi, pos = self._lm.lookup(hashes, cap)
        if len(qi) == 0:
            return []
        tq = qt[qi]
        q_static = static_items(q.items)
        span = int(qt.max()) + 1
        diag = pos - tq + span
        cands = _top_buckets(diag, qi, len(qt), bucket, min_matches, max_cands + len(qt) // 400)
        matches: list[_Match] = []
        used: set[tuple[int, int]] = set()
        for sel in cands:
            p, t, h = pos[sel], tq[sel], qi[sel]
            slot_id = int(np.searchsorted(self._lm_starts, int(np.median(p)), "right") - 1)
            if slot_id < 0 or not self._alive[slot_id]:
                continue
            slot = self._slots[slot_id]
            # one vote per query hash; drop votes already used by an accepted segment
            key_pairs = [(int(a), int(b)) for a, b in zip(h, p, strict=True)]
            keep = np.array([kp not in used for kp in key_pairs], bool)
            _, first = np.unique(h[keep], return_index=True)
            idx = np.flatnonzero(keep)[first]
            if len(idx) < min_matches:
                continue
            t_m, r_m = t[idx], p[idx] - slot.lm_start
            # query span of the agreeing hashes
            q0, q1 = int(t_m.min()), int(t_m.max())
            n_in_span = int(((qt >= q0) & (qt <= q1)).sum())
            n = len(idx)
            if n / max(1, n_in_span) < min_density:
                continue
            # hashes from silence or one held frame (static Chromaprint items on either side)
            # agree at every offset and are no evidence
            live = ~(
                _frames_static(t_m, q_static, q.item_rate)
                | _frames_static(r_m, self._slot_static(slot), slot.item_rate)
            )
            if int(live.sum()) < min_matches:
                continue
            used.update((int(a), int(b)) for a, b in zip(h[idx], p[idx], strict=True))
            # the segment's ends must be supported: stray chance hashes far outside the run of
            # agreeing hashes (e.g. inside the other work of a mashup) do not stretch it
            core = _supported_span(t_m)
            t_m, r_m = t_m[core], r_m[core]
            q0, q1 = int(t_m.min()), int(t_m.max())
            off = float(np.median(r_m - t_m))
            if q1 > q0 + 20:
                scale = float(
                    np.clip(np.polyfit(t_m, r_m, 1)[0], 1 - _LM.tempo_slack, 1 + _LM.tempo_slack)
                )
            else:
                scale = 1.0
            off = float(np.median(r_m - scale * t_m))
            pad = 0.25  # s: peaks are sparse; the edges of the span are a little inside the audio
            qs = max(0.0, q0 / LM_FRAME_RATE - pad)
            qe = min(q.duration_s, q1 / LM_FRAME_RATE + pad + 512 / 11025)
            if q0 / LM_FRAME_RATE < 1.0:
                qs = 0.0
            if q.duration_s - q1 / LM_FRAME_RATE < 1.0:
                qe = q.duration_s
            rs = max(0.0, (off / LM_FRAME_RATE) + scale * qs)
            re = (off / LM_FRAME_RATE) + scale * qe
            ref_dur = slot.lm_len / LM_FRAME_RATE + 0.1
            re = min(re, ref_dur) if ref_dur > 0.2 else re
            seg = Segment(
                query_start=round(qs, 3),
                query_end=round(qe, 3),
                ref_start=round(rs, 3),
                ref_end=round(re, 3),
            )
            score = n / (n + _LM.score_half)
            evidence: dict[str, object] = {
                "landmark_matches": n,
                "landmark_density": round(n / max(1, n_in_span), 3),
            }
            ber = self._ber_at(q, slot, off / LM_FRAME_RATE, scale, qs, qe)
            if ber is not None:
                evidence["chromaprint_ber"] = round(ber, 4)
            matches.append(_Match(slot.work_id, signal, score, 1.0 - score, [seg], evidence))
        return _tie_break_repeats(matches)

    def _slot_static(self, slot: _Slot) -> np.ndarray:
        return static_items(self._arena[slot.cp_start : slot.cp_start + slot.cp_len])

    def _resolve_overlaps(self, q: _Query, merged: list[_Match]) -> None:
        """Two works claiming the same stretch of the query at an edge of one of them (a mashup's
        join): the overlap goes to the work whose alignment the Chromaprint items support there;
        the other's segment is trimmed if its own BER over the overlap is not even under
        ``_CP.seg_ber``. Shared music (both supported) and unmeasurable overlaps are left alone."""
        if len(merged) < 2:
            return
        for m in merged:
            for i, s in enumerate(m.segments):
                for o in merged:
                    if o is m or s.query_end - s.query_start <= 0:
                        continue
                    for t in o.segments:
                        a, b = max(s.query_start, t.query_start), min(s.query_end, t.query_end)
                        if b - a < _CP.min_seg_items / q.item_rate:
                            continue
                        at_start, at_end = a <= s.query_start + 1e-6, b >= s.query_end - 1e-6
                        if at_start == at_end:  # inside s, or covering all of s: not a join
                            continue
                        mine = self._seg_ber(q, m.work_id, s, a, b)
                        theirs = self._seg_ber(q, o.work_id, t, a, b)
                        if mine is None or theirs is None:
                            continue
                        if mine >= _CP.seg_ber and theirs < _CP.seg_ber:
                            s = (
                                _extend(s, b, s.query_end)
                                if at_start
                                else _extend(s, s.query_start, a)
                            )
                m.segments[i] = s
            m.segments = [s for s in m.segments if s.query_end - s.query_start > 0]

    def _seg_ber(self, q: _Query, work_id: str, seg: Segment, qs: float, qe: float) -> float | None:
        """Chromaprint BER over query [qs, qe] along ``seg``'s alignment in ``work_id``."""
        slot_id = self._by_work.get(work_id)
        if slot_id is None:
            return None
        scale = (seg.ref_end - seg.ref_start) / max(1e-6, seg.query_end - seg.query_start)
        off_s = seg.ref_start - scale * seg.query_start
        # items are ~CP_ITEM_SPAN_S long: item j covers [j / rate, j / rate + span]
        return self._ber_at(
            q, self._slots[slot_id], off_s, scale, qs - CP_ITEM_SPAN_S / 2, qe - CP_ITEM_SPAN_S / 2
        )

    def _ber_at(
        self, q: _Query, slot: _Slot, off_s: float, scale: float, qs: float, qe: float
    ) -> float | None:
        """Chromaprint bit error rate of the query over [qs, qe] s at the alignment
        ``t_ref = off_s + scale * t_query`` (best of +-1 item), or None if too little overlaps."""
        rate = q.item_rate
        j = np.arange(max(0, int(qs * rate)), min(len(q.items), int(qe * rate) + 1))
        if len(j) < _CP.min_seg_items or slot.cp_len == 0:
            return None
        ref = self._arena[slot.cp_start : slot.cp_start + slot.cp_len]
        best = None
        for d in (-1, 0, 1):
            r = np.rint(off_s * slot.item_rate + scale * j + d).astype(np.int64)
            ok = (r >= 0) & (r < len(ref))
            if ok.sum() < _CP.min_seg_items:
                continue
            ber = float(_popcount(q.items[j[ok]] ^ ref[r[ok]]).mean()) / 32.0
            best = ber if best is None else min(best, ber)
        return best


# ------------------------------------------------------------------------------------ helpers


def _tie_break_repeats(matches: list[_Match]) -> list[_Match]:
    """Looping music: one query span can align with several repeats inside the same work, and the
    landmark counts of a loose repeat and of the true place are often close (telephone, echo).
    Among landmark matches of one work whose query spans overlap, one whose landmark count is
    within ``_LM.tie_count_ratio`` of the leader's and whose Chromaprint BER at its alignment is
    at least ``_LM.tie_ber_margin`` lower takes the lead (its score is raised just above)."""
    by_work: dict[str, list[_Match]] = {}
    for m in matches:
        by_work.setdefault(m.work_id, []).append(m)
    for ms in by_work.values():
        if len(ms) < 2:
            continue
        ms.sort(key=lambda m: -m.score)
        lead = ms[0]
        lead_ber = lead.evidence.get("chromaprint_ber")
        best = None
        for m in ms[1:]:
            ber = m.evidence.get("chromaprint_ber")
            if (
                ber is None
                or _overlap(m.segments[0], lead.segments[0]) <= 0
                or int(m.evidence["landmark_matches"])
                < _LM.tie_count_ratio * int(lead.evidence["landmark_matches"])
            ):
                continue
            clearly_better = lead_ber is None or float(ber) <= float(lead_ber) - _LM.tie_ber_margin
            if clearly_better and (
                best is None or float(ber) < float(best.evidence["chromaprint_ber"])
            ):
                best = m
        if best is not None:
            best.evidence["tie_break"] = "chromaprint_ber"
            best.score = min(1.0, lead.score + 1e-3)
            best.distance = 1.0 - best.score
    return matches


def _supported_span(t: np.ndarray) -> np.ndarray:
    """Mask of the agreeing landmark hashes (query frames ``t``) that define a segment's span:
    groups of fewer than ``_LM.edge_min`` hashes at either end, cut off from the rest by a gap of
    more than ``_LM.edge_gap_s``, are dropped (chance agreement, not the work playing there)."""
    order = np.argsort(t, kind="stable")
    ts = t[order]
    cuts = np.flatnonzero(np.diff(ts) > _LM.edge_gap_s * LM_FRAME_RATE) + 1
    groups = np.split(np.arange(len(ts)), cuts)
    lo, hi = 0, len(groups) - 1
    while lo < hi and len(groups[lo]) < _LM.edge_min:
        lo += 1
    while hi > lo and len(groups[hi]) < _LM.edge_min:
        hi -= 1
    keep = np.zeros(len(t), bool)
    keep[order[groups[lo][0] : groups[hi][-1] + 1]] = True
    return keep


def _top_buckets(
    diag: np.ndarray, qidx: np.ndarray, nq: int, width: int, min_votes: int, max_cands: int
) -> list[np.ndarray]:
    """Indices (into the vote arrays) of the best diagonal buckets, by distinct query items."""
    out: list[tuple[int, int, int]] = []
    for phase in (0, width // 2):
        b = (diag + phase) // width
        # distinct (bucket, query index) pairs
        upair = np.unique(b * (nq + 1) + qidx)
        ub, counts = np.unique(upair // (nq + 1), return_counts=True)
        good = counts >= min_votes
        ub, counts = ub[good], counts[good]
        for i in np.argsort(-counts, kind="stable")[:max_cands]:
            out.append((int(counts[i]), phase, int(ub[i])))
    out.sort(key=lambda t: -t[0])
    result: list[np.ndarray] = []
    taken: list[int] = []
    for _count, phase, bkt in out:
        center = int(bkt) * width - phase
        if any(abs(center - t) < width for t in taken):
            continue
        taken.append(center)
        sel = np.flatnonzero((diag + phase) // width == bkt)
        result.append(sel)
        if len(result) >= max_cands:
            break
    return result


def _verify_chromaprint(items: np.ndarray, ref: np.ndarray, j: np.ndarray, local: np.ndarray):
    """Best (offset, scale) for the votes; returns (offset, scale, per-item bit errors) or None."""
    nq = len(items)
    jj = np.arange(nq)
    jc_lo, jc_hi = max(0, int(j.min()) - 12), min(nq, int(j.max()) + 13)
    best = None
    # the median offset of the votes at every scale (one call for the grid), +-1 item
    o = np.median(local[None, :] - CP_SCALES[:, None] * j[None, :], axis=1)
    ro = (o[:, None] + np.array([-1.0, 0.0, 1.0])[None, :]).reshape(-1, 1)
    rs = np.repeat(CP_SCALES, 3)[:, None]
    r = np.rint(ro + rs * jj[None, :]).astype(np.int64)
    valid = (r >= 0) & (r < len(ref))
    e = np.where(valid, _popcount(items[None, :] ^ ref[np.clip(r, 0, len(ref) - 1)]), 32).astype(
        np.float32
    )
    win = e[:, jc_lo:jc_hi]
    vwin = valid[:, jc_lo:jc_hi]
    nvalid = vwin.sum(axis=1)
    mean = np.where(
        nvalid >= _CP.min_seg_items, (win * vwin).sum(axis=1) / np.maximum(nvalid, 1), 32.0
    )
    # prefer scale 1 unless another scale is clearly better (0.25 bit per 1 % of stretch)
    k = int(np.argmin(mean + 25.0 * np.abs(rs[:, 0] - 1.0)))
    if mean[k] / 32.0 > _CP.seg_ber + 0.08:
        return None
    best = (float(ro[k, 0]), float(rs[k, 0]), np.where(valid[k], e[k], np.nan))
    return best


def static_items(items: np.ndarray) -> np.ndarray:
    """Mask of the items that sit in silence, near-silence or one held frame (see
    ``_CP.static_bits``): the mean bit change over ``_CP.static_lag`` items, taken over the lags
    that touch the item, is below ``_CP.static_bits``."""
    n = len(items)
    k = _CP.static_lag
    if n <= k:
        return np.zeros(n, bool)
    d = _popcount(items[k:] ^ items[:-k]).astype(np.float32)  # d[i]: items i and i + k
    c = np.concatenate([[0.0], np.cumsum(d)])
    i = np.arange(n)
    lo = np.clip(i - k, 0, len(d))  # lags starting in [i - k, i] touch item i
    hi = np.clip(i + 1, 0, len(d))
    mean = (c[hi] - c[lo]) / np.maximum(hi - lo, 1)
    return mean < _CP.static_bits


def _frames_static(frames: np.ndarray, static: np.ndarray, item_rate: float) -> np.ndarray:
    """For landmark frames: is the Chromaprint item centred there static?"""
    if len(static) == 0:
        return np.zeros(len(frames), bool)
    j = np.rint((frames / LM_FRAME_RATE - CP_ITEM_SPAN_S / 2) * item_rate).astype(np.int64)
    return static[np.clip(j, 0, len(static) - 1)]


def _live_background(q: _Query) -> bg.BackgroundPeaks | None:
    """The background peaks outside silence and held frames (static Chromaprint items): a held
    chord has peaks in the same bins frame after frame, which agree at every offset."""
    p = q.background
    if p is None:
        return None
    keep = ~_frames_static(p.frames, static_items(q.items), q.item_rate)
    return bg.BackgroundPeaks(p.frames[keep], p.bins[keep], p.reference[keep])


def _mask_static(
    errs: np.ndarray, q_static: np.ndarray, ref: np.ndarray, off: float, scale: float
) -> np.ndarray:
    """``errs`` (per query item) with the items that are static in the query or at their aligned
    reference item set to NaN: such stretches never make or extend a matched run."""
    r = np.rint(off + scale * np.arange(len(errs))).astype(np.int64)
    ok = (r >= 0) & (r < len(ref))
    if not ok.any():
        return errs
    lo, hi = int(r[ok].min()), int(r[ok].max()) + 1
    a, b = max(0, lo - _CP.static_lag), min(len(ref), hi + _CP.static_lag)
    r_static = np.zeros(len(errs), bool)
    r_static[ok] = static_items(ref[a:b])[r[ok] - a]
    return np.where(q_static | r_static, np.nan, errs)


def _runs_below(errs: np.ndarray) -> list[tuple[int, int, float]]:
    """Runs (j0, j1 inclusive, mean BER) where smoothed BER < _CP.seg_ber, long and good enough."""
    valid = ~np.isnan(errs)
    e = np.where(valid, errs, 32.0) / 32.0
    n = len(e)
    w = min(_CP.smooth, n)
    kernel = np.ones(w) / w
    sm = np.convolve(np.pad(e, (w // 2, w - 1 - w // 2), mode="edge"), kernel, mode="valid")
    mask = (sm < _CP.seg_ber) & valid
    out = []
    if not mask.any():
        return out
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        j0, j1 = int(a), int(b) - 1
        # trim edge items that are individually bad
        while j0 < j1 and e[j0] > _CP.seg_ber + 0.1:
            j0 += 1
        while j1 > j0 and e[j1] > _CP.seg_ber + 0.1:
            j1 -= 1
        if j1 - j0 + 1 < _CP.min_seg_items:
            continue
        ber = float(e[j0 : j1 + 1].mean())
        if ber <= _max_ber(j1 - j0 + 1):
            out.append((j0, j1, ber))
    return out


def _max_ber(n_items: int) -> float:
    """Acceptance BER for a run of ``n_items``: short runs are few independent samples (items
    overlap 15/16), so they must be much cleaner than long ones."""
    if n_items >= _CP.long_seg_items:
        return _CP.max_ber
    f = (n_items - _CP.min_seg_items) / max(1, _CP.long_seg_items - _CP.min_seg_items)
    return _CP.max_ber_short + f * (_CP.max_ber - _CP.max_ber_short)


def _cp_segment(
    j0: int, j1: int, nq: int, off: float, scale: float, rate: float, qdur: float, rdur: float
) -> Segment:
    half = CP_ITEM_SPAN_S / 2
    qs = 0.0 if j0 == 0 else j0 / rate + half - 0.5 / rate
    qe = qdur if j1 >= nq - 1 else min(qdur, j1 / rate + half + 0.5 / rate)
    # ref time of query time t: item r = off + scale * j  ⇒  t_ref = off/rate + scale * t
    rs = max(0.0, off / rate + scale * qs)
    re = min(rdur, off / rate + scale * qe)
    return Segment(
        query_start=round(qs, 3),
        query_end=round(qe, 3),
        ref_start=round(rs, 3),
        ref_end=round(re, 3),
    )


def _overlap(a: Segment, b: Segment) -> float:
    return min(a.query_end, b.query_end) - max(a.query_start, b.query_start)


def _extend(t: Segment, qs: float, qe: float) -> Segment:
    """``t`` stretched to query span [qs, qe] along its own alignment."""
    slope = (t.ref_end - t.ref_start) / max(1e-6, t.query_end - t.query_start)
    return Segment(
        query_start=qs,
        query_end=qe,
        ref_start=round(max(0.0, t.ref_start + (qs - t.query_start) * slope), 3),
        ref_end=round(t.ref_end + (qe - t.query_end) * slope, 3),
    )


def _covered(matches: list[_Match], duration_s: float) -> float:
    """Fraction of the query covered by clean Chromaprint segments (BER at most _SH.skip_ber,
    time scale inside its grid): a worse one may be a larger change that the triplets measure."""
    spans = sorted(
        (s.query_start, s.query_end)
        for m in matches
        if m.signal == "chromaprint"
        and abs(float(m.evidence.get("time_scale", 1.0)) - 1.0) < _SH.lead_scale
        and float(m.evidence.get("chromaprint_ber", 1.0)) <= _SH.skip_ber
        for s in m.segments
    )
    total, end = 0.0, 0.0
    for a, b in spans:
        a = max(a, end)
        if b > a:
            total += b - a
            end = b
    return total / max(duration_s, 1e-6)


def _merge_rank(m: _Match) -> int:
    """Which signal's segments and alignment lead a work's merged result: the triplets when the
    copy is pitch-shifted or time-scaled beyond what the other signals model, else Chromaprint
    (the most precise alignment), then the rest."""
    if m.signal == "triplets" and (
        abs(float(m.evidence.get("pitch_shift_semitones", 0.0))) >= _SH.lead_pitch
        or abs(float(m.evidence.get("time_scale", 1.0)) - 1.0) >= _SH.lead_scale
    ):
        return 0
    return 1 if m.signal == "chromaprint" else 2


def _merge_matches(matches: list[_Match]) -> list[_Match]:
    """One result per work: best signal's score; segments merged across signals."""
    by_work: dict[str, list[_Match]] = {}
    for m in matches:
        by_work.setdefault(m.work_id, []).append(m)
    out = []
    for work_id, ms in by_work.items():
        ms.sort(key=lambda m: -m.score)
        best = ms[0]
        segs: list[Segment] = []
        evidence: dict[str, object] = {"signals": sorted({m.signal for m in ms})}
        # best evidence first; a segment aligned with a kept one extends it; one whose query span is
        # mostly covered by a better segment at another alignment (a repeat inside the work, or
        # chance) is dropped
        for m in sorted(ms, key=lambda m: (_merge_rank(m), -m.score)):
            for s in m.segments:
                dup = False
                for i, t in enumerate(segs):
                    same_align = (
                        abs((s.ref_start - s.query_start) - (t.ref_start - t.query_start)) < 1.5
                    )
                    if same_align and _overlap(s, t) > -1.0:
                        segs[i] = _extend(
                            t, min(s.query_start, t.query_start), max(s.query_end, t.query_end)
                        )
                        dup = True
                        break
                    if _overlap(s, t) > 0.5 * (s.query_end - s.query_start):
                        dup = True
                        break
                if not dup:
                    segs.append(s)
            for k, v in m.evidence.items():
                evidence.setdefault(k, v)
        segs.sort(key=lambda s: s.query_start)
        # the signal named is the one whose alignment leads (see _merge_rank); the score is the best
        lead = min(ms, key=lambda m: (_merge_rank(m), -m.score))
        out.append(_Match(work_id, lead.signal, best.score, best.distance, segs, evidence))
    return out
