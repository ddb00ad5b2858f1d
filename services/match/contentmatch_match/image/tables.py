"""Storage: one table per stored code, and the side table of works.

FAISS positions are rows; a work is a *slot*. Tables whose code every work has exactly one
of (pHash, PDQ, dHash, vertical dHash) use the slot as the row and keep a numpy copy of the
codes, so that a candidate's distances are a gather rather than a FAISS call. Tables with a
variable number of rows per work (crop ladder, whole-picture codes) keep a row -> slot
column, each slot's span of rows and, per row, any extra columns (a box). ``remove`` marks
the slot dead (results from dead slots are filtered); once dead slots exceed
``TableParams.compact_ratio``, every table is rebuilt from the live slots
(``IndexBinaryIDMap2.remove_ids`` is O(N) per call on a flat index anyway).

Every table and the side table own their ``state()`` (snapshot sections, see
``index.snapshot``), ``from_state`` and ``memory_bytes``: resident numpy columns only, no
Python object per work except its id. Thumbnails live on disk (``index.blobs``), read per
candidate.

Why ``IndexBinaryFlat`` for the hash codes: it is exact (a near duplicate at distance 14 is
always returned; an approximate index that misses it is a false negative) and fast enough: a
popcount scan of 1,000,000 codes takes ~0.5 ms for 64-bit and ~1 ms for 256-bit codes
(``bench/image_bench``). ``IndexBinaryMultiHash`` is exact only with enough bit flips and was
20x slower at these radii; ``IndexBinaryHash``/IVF/HNSW are approximate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from contentmatch_match.image.thumbs import Thumb, thumb_from_record, thumb_record
from contentmatch_match.index.blobs import BlobStore
from contentmatch_match.index.snapshot import State, prefixed, sub


class Rows:
    """A growable 2-D numpy array (amortised doubling)."""

    def __init__(self, width: int, dtype: type | np.dtype) -> None:
        self.a = np.zeros((64, width), dtype=dtype)
        self.n = 0

    @classmethod
    def of(cls, a: np.ndarray) -> Rows:
        out = cls.__new__(cls)
        out.a, out.n = np.ascontiguousarray(a), len(a)
        if a.ndim != 2:
            raise ValueError("rows are 2-D")
        return out

    def append(self, rows: np.ndarray) -> int:
        start = self.n
        need = self.n + len(rows)
        if need > len(self.a):
            cap = max(need, 2 * len(self.a))
            b = np.zeros((cap, self.a.shape[1]), dtype=self.a.dtype)
            b[: self.n] = self.a[: self.n]
            self.a = b
        self.a[start:need] = rows
        self.n = need
        return start

    @property
    def view(self) -> np.ndarray:
        return self.a[: self.n]

    def nbytes(self) -> int:
        return int(self.a.nbytes)


class SlotSpans:
    """Each slot's first row and number of rows in a table with a variable number per work
    (rows of one slot are contiguous)."""

    def __init__(self) -> None:
        self.first = Rows(1, np.int64)
        self.count = Rows(1, np.int32)

    def set(self, slot: int, first: int, count: int) -> None:
        if slot >= self.first.n:
            gap = slot + 1 - self.first.n
            self.first.append(np.zeros((gap, 1), np.int64))
            self.count.append(np.zeros((gap, 1), np.int32))
        self.first.a[slot, 0], self.count.a[slot, 0] = first, count

    def get(self, slot: int) -> tuple[int, int] | None:
        if slot >= self.count.n or not self.count.a[slot, 0]:
            return None
        return int(self.first.a[slot, 0]), int(self.count.a[slot, 0])

    def nbytes(self) -> int:
        return self.first.nbytes() + self.count.nbytes()


@dataclass(frozen=True)
class TableSpec:
    """A stored code: its name, its size, whether every work has exactly one row of it, and
    the extra per-row columns (name -> (width, dtype))."""

    name: str
    nbytes: int
    one_per_work: bool = False
    extras: dict[str, tuple[int, type]] = field(default_factory=dict)


class CodeTable:
    """The rows of one code in an exact FAISS binary index, owned by slots."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.fx = faiss.IndexBinaryFlat(spec.nbytes * 8)
        self.codes = Rows(spec.nbytes, np.uint8) if spec.one_per_work else None
        self.row_slot = None if spec.one_per_work else Rows(1, np.int32)
        self.spans = SlotSpans()  # variable tables only
        self.extras = {k: Rows(w, dt) for k, (w, dt) in spec.extras.items()}

    @property
    def ntotal(self) -> int:
        return int(self.fx.ntotal)

    def add(self, slot: int, codes: np.ndarray, **extras: np.ndarray) -> None:
        """The rows of one slot (one-per-work tables: exactly one row, slots in order)."""
        self.add_rows(np.full(len(codes), slot, np.int32), codes, **extras)

    def add_rows(self, slots: np.ndarray, codes: np.ndarray, **extras: np.ndarray) -> None:
        """Rows with their slots (grouped by slot, slots ascending)."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, self.spec.nbytes)
        if self.codes is not None:
            self.codes.append(codes)
        else:
            assert self.row_slot is not None
            start = self.row_slot.append(np.asarray(slots, np.int32)[:, None])
            if len(slots):
                uniq, first, count = np.unique(slots, return_index=True, return_counts=True)
                last = int(uniq[-1])
                self.spans.set(last, 0, 0)  # grow once
                self.spans.first.a[uniq, 0] = start + first
                self.spans.count.a[uniq, 0] = count
        for k, rows in self.extras.items():
            rows.append(extras[k])
        if len(codes):
            self.fx.add(codes)

    def slots(self, rows: np.ndarray) -> np.ndarray:
        """The slot of each FAISS row."""
        return rows if self.row_slot is None else self.row_slot.view[rows, 0]

    def all_codes(self) -> np.ndarray:
        if self.codes is not None:
            return self.codes.view
        if not self.ntotal:
            return np.zeros((0, self.spec.nbytes), np.uint8)
        return self.fx.reconstruct_n(0, self.ntotal).reshape(-1, self.spec.nbytes)

    def compacted(self, live: np.ndarray) -> CodeTable:
        """A new table holding the rows of the ``live`` slots, renumbered 0..len(live)-1."""
        out = CodeTable(self.spec)
        codes = self.all_codes()
        if self.codes is not None:
            out.add_rows(np.arange(len(live), dtype=np.int32), codes[live])
            return out
        # rows of the live slots, in slot order (rows of one slot are contiguous)
        first = np.zeros(len(live), np.int64)
        count = np.zeros(len(live), np.int64)
        known = live < self.spans.count.n
        first[known] = self.spans.first.view[live[known], 0]
        count[known] = self.spans.count.view[live[known], 0]
        rows = np.repeat(first - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
        new_slot = np.repeat(np.arange(len(live), dtype=np.int32), count)
        extras = {k: v.view[rows] for k, v in self.extras.items()}
        out.add_rows(new_slot, codes[rows], **extras)
        return out

    def memory_bytes(self) -> int:
        n = self.ntotal * self.spec.nbytes
        if self.codes is not None:
            n += self.codes.nbytes()
        if self.row_slot is not None:
            n += self.row_slot.nbytes() + self.spans.nbytes()
        return n + sum(r.nbytes() for r in self.extras.values())

    # -- snapshot ---------------------------------------------------------------------------

    def state(self) -> State:
        sections: dict[str, Any] = {"codes": self.all_codes()}
        if self.row_slot is not None:
            sections["row_slot"] = self.row_slot.view
            sections["span_first"] = self.spans.first.view
            sections["span_count"] = self.spans.count.view
        for k, rows in self.extras.items():
            sections[f"extra_{k}"] = rows.view
        return {"name": self.spec.name, "nbytes": self.spec.nbytes}, sections

    @classmethod
    def from_state(cls, spec: TableSpec, meta: dict, sections: dict) -> CodeTable:
        if meta.get("name") != spec.name or meta.get("nbytes") != spec.nbytes:
            raise ValueError(f"table state {meta} is not of {spec.name}")
        out = cls(spec)
        codes = np.ascontiguousarray(sections["codes"], np.uint8).reshape(-1, spec.nbytes)
        if out.codes is not None:
            out.codes = Rows.of(codes.copy())
        else:
            out.row_slot = Rows.of(sections["row_slot"])
            out.spans.first = Rows.of(sections["span_first"])
            out.spans.count = Rows.of(sections["span_count"])
        for k in out.extras:
            out.extras[k] = Rows.of(sections[f"extra_{k}"])
        if len(codes):
            out.fx.add(codes)
        return out


class ThumbStore:
    """Work thumbnails by slot, on disk (``BlobStore``), decoded when a judge reads them; the
    last few read are kept (one search reads a candidate's several times)."""

    _KEEP = 32

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._recent: dict[int, Thumb] = {}

    def append(self, thumb: Thumb | None) -> int:
        return self.blobs.append(thumb_record(thumb) if thumb is not None else None)

    def has(self, slot: int) -> bool:
        return self.blobs.has(slot)

    def __getitem__(self, slot: int) -> Thumb | None:
        t = self._recent.get(slot)
        if t is not None:
            return t
        raw = self.blobs.get(slot)
        if raw is None:
            return None
        t = thumb_from_record(raw)
        if len(self._recent) >= self._KEEP:
            self._recent.pop(next(iter(self._recent)))
        self._recent[slot] = t
        return t


class OrbSizes:
    """Each slot's ORB copy's (width, height), or None without ORB features."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def __getitem__(self, slot: int) -> tuple[int, int] | None:
        w, h = self.rows.a[slot].tolist()
        return None if w < 0 else (w, h)


class Works:
    """The side table: slot -> work id, liveness, and what the judges need per work (PDQ
    quality, whether the work has a dHash, its thumbnails on disk, its ORB copy's size)."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory
        self.work_ids: list[str] = []
        self.slot_of: dict[str, int] = {}
        self.alive = Rows(1, np.bool_)
        self.quality = Rows(1, np.int16)  # the work's PDQ quality (0..100)
        self.has_dhash = Rows(1, np.bool_)
        self.thumbs = ThumbStore(BlobStore(directory))  # grey <= work_thumb_side (+ chroma, fine)
        self.orb_wh = Rows(2, np.int32)  # the ORB copy's width, height (-1: no ORB)
        self.dead = 0

    @property
    def orb_size(self) -> OrbSizes:
        return OrbSizes(self.orb_wh)

    def add(
        self,
        work_ids: list[str],
        quality: np.ndarray,
        has_dhash: np.ndarray,
        thumbs: list[Thumb | None],
        orb_size: list[tuple[int, int] | None],
    ) -> int:
        """New slots for ``work_ids`` (new ids); the first slot."""
        base = len(self.work_ids)
        n = len(work_ids)
        self.work_ids.extend(work_ids)
        self.slot_of.update((w, base + j) for j, w in enumerate(work_ids))
        self.alive.append(np.ones((n, 1), np.bool_))
        self.quality.append(np.asarray(quality, np.int16).reshape(n, 1))
        self.has_dhash.append(np.asarray(has_dhash, np.bool_).reshape(n, 1))
        for t in thumbs:
            self.thumbs.append(t)
        wh = [s if s is not None else (-1, -1) for s in orb_size]
        self.orb_wh.append(np.asarray(wh, np.int32).reshape(n, 2))
        return base

    def add_bulk(self, work_ids: list[str], shared_thumb: Thumb | None) -> int:
        """New slots for works known by their codes only (the scale benchmark), all pointing at
        one thumbnail record; the first slot."""
        n = len(work_ids)
        base = len(self.work_ids)
        self.work_ids.extend(work_ids)
        self.slot_of.update((w, base + j) for j, w in enumerate(work_ids))
        self.alive.append(np.ones((n, 1), np.bool_))
        self.quality.append(np.full((n, 1), 100, np.int16))
        self.has_dhash.append(np.ones((n, 1), np.bool_))
        if shared_thumb is not None:
            self.thumbs.blobs.append_shared(n, thumb_record(shared_thumb))
        else:
            self.thumbs.blobs.append_empty(n)
        self.orb_wh.append(np.full((n, 2), -1, np.int32))
        return base

    def remove(self, work_id: str) -> None:
        slot = self.slot_of.pop(work_id)
        self.alive.a[slot, 0] = False
        self.dead += 1

    def live(self) -> np.ndarray:
        return np.flatnonzero(self.alive.view[:, 0])

    def compacted(self, live: np.ndarray) -> Works:
        out = Works(self.directory)
        out.work_ids = [self.work_ids[s] for s in live.tolist()]
        out.slot_of = {w: j for j, w in enumerate(out.work_ids)}
        out.alive = Rows.of(np.ones((len(live), 1), np.bool_))
        out.quality = Rows.of(self.quality.view[live])
        out.has_dhash = Rows.of(self.has_dhash.view[live])
        out.orb_wh = Rows.of(self.orb_wh.view[live])
        out.thumbs = ThumbStore(self.thumbs.blobs.compacted(live))
        return out

    def __len__(self) -> int:
        return len(self.slot_of)

    def memory_bytes(self) -> int:
        n = self.quality.nbytes() + self.has_dhash.nbytes() + self.alive.nbytes()
        n += self.orb_wh.nbytes() + self.thumbs.blobs.memory_bytes()
        # work id strings, list and dict entries (CPython: str header 49 B, pointer 8 B,
        # dict entry ~ 3 words + its share of the table)
        n += sum(len(w) + 49 for w in self.work_ids) + 8 * len(self.work_ids)
        n += 100 * len(self.slot_of)
        return int(n)

    def disk_bytes(self) -> int:
        return self.thumbs.blobs.used_bytes

    # -- snapshot ---------------------------------------------------------------------------

    def state(self) -> State:
        ids = [w.encode() for w in self.work_ids]
        lens = np.fromiter((len(b) for b in ids), np.int64, len(ids))
        meta: dict[str, Any] = {"slots": len(self.work_ids), "dead": self.dead}
        sections: dict[str, Any] = {
            "id_bytes": np.frombuffer(b"".join(ids), np.uint8),
            "id_lens": lens,
            "alive": self.alive.view,
            "quality": self.quality.view,
            "has_dhash": self.has_dhash.view,
            "orb_wh": self.orb_wh.view,
        }
        m, s = prefixed("thumbs", self.thumbs.blobs.state())
        return meta | m, sections | s

    @classmethod
    def from_state(cls, meta: dict, sections: dict, directory: str | None = None) -> Works:
        out = cls.__new__(cls)
        out.directory = directory
        raw = sections["id_bytes"].tobytes()
        ends = np.cumsum(sections["id_lens"]).tolist()
        starts = [0, *ends[:-1]]
        out.work_ids = [raw[a:b].decode() for a, b in zip(starts, ends, strict=True)]
        out.alive = Rows.of(sections["alive"])
        out.quality = Rows.of(sections["quality"])
        out.has_dhash = Rows.of(sections["has_dhash"])
        out.orb_wh = Rows.of(sections["orb_wh"])
        alive = out.alive.view[:, 0]
        out.slot_of = {w: s for s, w in enumerate(out.work_ids) if alive[s]}
        tm, ts = sub("thumbs", meta, sections)
        out.thumbs = ThumbStore(BlobStore.from_state(tm, ts, directory))
        out.dead = int(meta["dead"])
        if len(out.work_ids) != meta["slots"] or len(out.thumbs.blobs) != meta["slots"]:
            raise ValueError("works state does not hold its slots")
        return out
