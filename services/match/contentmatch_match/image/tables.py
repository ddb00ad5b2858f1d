"""Storage: one table per stored code, and the side table of works.

FAISS positions are rows; a work is a *slot*. Tables whose code every work has exactly one
of (pHash, PDQ, dHash, vertical dHash) use the slot as the row and keep a numpy copy of the
codes, so that a candidate's distances are a gather rather than a FAISS call. Tables with a
variable number of rows per work (crop ladder, whole-picture codes, ORB descriptors) keep a
row -> slot column, each slot's span of rows and, per row, any extra columns (a box, a
keypoint). ``remove`` marks the slot dead (results from dead slots are filtered); once dead
slots exceed ``TableParams.compact_ratio``, every table is rebuilt from the live slots
(``IndexBinaryIDMap2.remove_ids`` is O(N) per call on a flat index anyway).

Why ``IndexBinaryFlat``: it is exact (a near duplicate at distance 14 is always returned; an
approximate index that misses it is a false negative) and fast enough: a popcount scan of
1,000,000 codes takes ~0.5 ms for 64-bit and ~1 ms for 256-bit codes (``bench/image_bench``).
``IndexBinaryMultiHash`` is exact only with enough bit flips and was 20x slower at these
radii; ``IndexBinaryHash``/IVF/HNSW are approximate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faiss
import numpy as np

from contentmatch_match.image.thumbs import Thumb


class Rows:
    """A growable 2-D numpy array (amortised doubling)."""

    def __init__(self, width: int, dtype: type | np.dtype) -> None:
        self.a = np.zeros((64, width), dtype=dtype)
        self.n = 0

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
        self.spans: dict[int, tuple[int, int]] = {}  # slot -> (first row, rows); variable only
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
            start = self.row_slot.append(np.asarray(slots, np.int32)[:, None])
            if len(slots):
                uniq, first, count = np.unique(slots, return_index=True, return_counts=True)
                for s, f, c in zip(uniq.tolist(), first.tolist(), count.tolist(), strict=True):
                    self.spans[s] = (start + f, c)
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
        for new, old in enumerate(live.tolist()):
            span = self.spans.get(old)
            if span is None:
                continue
            rows = slice(span[0], span[0] + span[1])
            extras = {k: v.view[rows] for k, v in self.extras.items()}
            out.add(new, codes[rows], **extras)
        return out

    def memory_bytes(self) -> int:
        n = self.ntotal * self.spec.nbytes
        if self.codes is not None:
            n += self.codes.nbytes()
        if self.row_slot is not None:
            n += self.row_slot.nbytes()
        return n + sum(r.nbytes() for r in self.extras.values())


class Works:
    """The side table: slot -> work id, liveness, and what the judges need per work (PDQ
    quality, whether the work has a dHash, its thumbnails, its ORB copy's size)."""

    def __init__(self) -> None:
        self.work_ids: list[str] = []
        self.slot_of: dict[str, int] = {}
        self.alive = Rows(1, np.bool_)
        self.quality = Rows(1, np.int16)  # the work's PDQ quality (0..100)
        self.has_dhash = Rows(1, np.bool_)
        self.thumbs: list[Thumb | None] = []  # grey <= work_thumb_side px + chroma (+ fine)
        self.orb_size: list[tuple[int, int] | None] = []  # the ORB copy's width, height
        self.dead = 0

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
        self.thumbs.extend(thumbs)
        self.orb_size.extend(orb_size)
        return base

    def remove(self, work_id: str) -> None:
        slot = self.slot_of.pop(work_id)
        self.alive.a[slot, 0] = False
        self.dead += 1

    def live(self) -> np.ndarray:
        return np.flatnonzero(self.alive.view[:, 0])

    def compacted(self, live: np.ndarray) -> Works:
        out = Works()
        ids = live.tolist()
        out.add(
            [self.work_ids[s] for s in ids],
            self.quality.view[live],
            self.has_dhash.view[live],
            [self.thumbs[s] for s in ids],
            [self.orb_size[s] for s in ids],
        )
        return out

    def __len__(self) -> int:
        return len(self.slot_of)

    def memory_bytes(self) -> int:
        n = self.quality.nbytes() + self.has_dhash.nbytes() + self.alive.nbytes()
        # work id strings, dict and list entries (approximate)
        n += sum(len(w) + 49 for w in self.work_ids) + 104 * len(self.slot_of)
        n += 8 * 4 * len(self.orb_size)
        n += sum(t.nbytes + 200 for t in self.thumbs if t is not None)
        return int(n)
