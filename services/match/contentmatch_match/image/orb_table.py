"""The ORB table: an inverted file of descriptor keys in memory, each work's features on disk.

Searching every registered descriptor (a flat Hamming k-NN) costs time linear in the registry
(~140 ms at 1,000 works, seconds at 100,000) and 16 KB of memory per work. Instead, each
descriptor is filed under a *key*: ``OrbParams.key_bits`` chosen bits of its 256 (bit
sampling, the locality-sensitive hash of Hamming space, Indyk & Motwani 1998). A query
descriptor probes its own key and, with ``probe_radius`` 1, the keys one bit away
(multi-probe LSH, Lv et al. 2007): a copy's corresponding descriptors differ in a few bits,
so most land in a probed key. The works the probes hit most are the *shortlist*; their full
features are read from disk (``BlobStore``) and matched exactly, as the flat search did, so
the shortlist only decides which works are looked at, never how a match is measured.

Postings are the owning slot only (4 bytes a descriptor). Recent adds go to sorted runs
(key, slot) searched with ``searchsorted``; once the runs hold ``fold_rows`` they are folded
into a compressed base (offsets per key, slots), so memory stays ~4 bytes a descriptor plus
4 bytes a key.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from contentmatch_match.image.config import OrbParams
from contentmatch_match.index.blobs import BlobStore
from contentmatch_match.index.snapshot import State, prefixed, sub

_HEAD = struct.Struct("<I")  # descriptors in the record
_FOLD_MIN = 1 << 21  # runs fold into the base once they hold this many rows (or base / 4)


@dataclass(frozen=True)
class SyntheticOrb:
    """Postings of works known by their ORB keys only (the scale benchmark): offsets per key
    (+ 1), the owner (0..n-1) of each posting grouped by key, and the features record and
    ORB copy size every such work points at."""

    off: np.ndarray
    owners: np.ndarray
    record: bytes
    size: tuple[int, int]


def descriptor_keys(desc: np.ndarray, key_bits: tuple[int, ...]) -> np.ndarray:
    """uint32 key of each descriptor (n x 32 uint8): its ``key_bits``, first = highest."""
    bits = np.unpackbits(np.ascontiguousarray(desc, np.uint8), axis=1)[:, list(key_bits)]
    weights = (1 << np.arange(len(key_bits) - 1, -1, -1)).astype(np.uint32)
    return (bits.astype(np.uint32) * weights).sum(axis=1, dtype=np.uint32)


def probe_keys(keys: np.ndarray, n_bits: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(probed key, index of the query descriptor) for each key and its neighbours within
    ``radius`` (0 or 1) bits."""
    idx = np.arange(len(keys))
    if radius <= 0:
        return keys, idx
    flips = np.concatenate([[0], 1 << np.arange(n_bits)]).astype(np.uint32)
    probed = (keys[:, None] ^ flips[None, :]).ravel()
    return probed, np.repeat(idx, len(flips))


def features_record(desc: np.ndarray, kp: np.ndarray) -> bytes:
    n = len(desc)
    return (
        _HEAD.pack(n)
        + np.ascontiguousarray(desc, np.uint8).tobytes()
        + np.ascontiguousarray(kp, np.float32).tobytes()
    )


def features_from_record(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    (n,) = _HEAD.unpack_from(raw)
    o = _HEAD.size
    desc = np.frombuffer(raw, np.uint8, n * 32, o).reshape(n, 32)
    kp = np.frombuffer(raw, np.float32, n * 2, o + n * 32).reshape(n, 2)
    return desc, kp


def _gather(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of every [start, end) range, and which range each came from."""
    lens = np.maximum(ends - starts, 0).astype(np.int64)
    total = int(lens.sum())
    if not total:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    which = np.repeat(np.arange(len(lens)), lens)
    offs = np.cumsum(lens) - lens
    return starts.astype(np.int64)[which] + np.arange(total) - offs[which], which


class OrbTable:
    """ORB features by slot: key postings (resident) and full features (on disk)."""

    def __init__(self, params: OrbParams, directory: str | None = None) -> None:
        self.key_bits = tuple(params.key_bits)
        self.directory = directory
        self.blobs = BlobStore(directory)
        self.ntotal = 0  # descriptors filed
        self._base_off: np.ndarray | None = None  # uint32/int64 per key + 1
        self._base_slots = np.zeros(0, np.uint32)
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # sorted (keys, slots)

    @property
    def n_keys(self) -> int:
        return 1 << len(self.key_bits)

    # -- adding -----------------------------------------------------------------------------

    def add(self, slot: int, desc: np.ndarray | None, kp: np.ndarray | None) -> None:
        """The next slot's features (None: the work has none)."""
        if slot != len(self.blobs):
            raise ValueError(f"slot {slot} added out of order")
        if desc is None or kp is None or not len(desc):
            self.blobs.append(None)
            return
        self.blobs.append(features_record(desc, kp))
        keys = descriptor_keys(desc, self.key_bits)
        self._add_postings(keys, np.full(len(keys), slot, np.uint32))

    def add_empty(self, n: int) -> None:
        self.blobs.append_empty(n)

    def add_synthetic(self, n: int, syn: SyntheticOrb) -> None:
        """``n`` works known by their postings only, into an empty table (as its base)."""
        off, owners = syn.off, syn.owners
        if self.ntotal or len(off) != self.n_keys + 1 or int(off[-1]) != len(owners):
            raise ValueError("synthetic postings go into an empty table, one range per key")
        first = self.blobs.append_shared(n, syn.record)
        self._base_off = off.astype(np.uint32 if len(owners) < 1 << 32 else np.int64)
        self._base_slots = (owners.astype(np.uint32) + np.uint32(first)).astype(np.uint32)
        self.ntotal = len(owners)

    def _add_postings(self, keys: np.ndarray, slots: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self._runs.append((keys[order], slots[order]))
        self.ntotal += len(keys)
        while len(self._runs) > 1 and len(self._runs[-1][0]) * 2 >= len(self._runs[-2][0]):
            (k2, s2), (k1, s1) = self._runs.pop(), self._runs.pop()
            k, s = np.concatenate([k1, k2]), np.concatenate([s1, s2])
            o = np.argsort(k, kind="stable")
            self._runs.append((k[o], s[o]))
        in_runs = sum(len(k) for k, _ in self._runs)
        if in_runs >= max(_FOLD_MIN, len(self._base_slots) // 4):
            self._fold()

    def _fold(self) -> None:
        """Runs into the base: a counting sort by key."""
        keys = [k for k, _ in self._runs]
        slots = [s for _, s in self._runs]
        if self._base_off is not None:
            counts = np.diff(self._base_off).astype(np.int64)
            keys.insert(0, np.repeat(np.arange(self.n_keys, dtype=np.uint32), counts))
            slots.insert(0, self._base_slots)
        k, s = np.concatenate(keys), np.concatenate(slots)
        order = np.argsort(k, kind="stable")
        self._base_slots = s[order]
        counts = np.bincount(k, minlength=self.n_keys)
        dtype = np.uint32 if len(k) < 1 << 32 else np.int64
        off = np.zeros(self.n_keys + 1, dtype)
        np.cumsum(counts, out=off[1:])
        self._base_off = off
        self._runs = []

    # -- searching --------------------------------------------------------------------------

    def shortlist(
        self, desc: np.ndarray, alive: np.ndarray, radius: int, n: int, min_hits: int, budget: int
    ) -> np.ndarray:
        """The ``n`` live slots whose descriptors the query's probes hit most (at least
        ``min_hits`` times), most first. Probes are taken rarest key first until ``budget``
        postings are read: a key shared by a large part of the registry (flat areas, repeated
        patterns: ORB's bits are far from balanced on real pictures) says little about which
        work it is and would cost the most (stop words, as in text retrieval)."""
        if not self.ntotal or not len(desc):
            return np.zeros(0, np.int64)
        probes, _ = probe_keys(descriptor_keys(desc, self.key_bits), len(self.key_bits), radius)
        probes = np.unique(probes)
        ranges = []  # (starts, ends, slots array) per level
        if self._base_off is not None:
            ranges.append((self._base_off[probes], self._base_off[probes + 1], self._base_slots))
        for keys, slots in self._runs:
            lo = np.searchsorted(keys, probes, "left")
            ranges.append((lo, np.searchsorted(keys, probes, "right"), slots))
        lens = sum((e.astype(np.int64) - b.astype(np.int64) for b, e, _ in ranges), np.int64(0))
        order = np.argsort(lens, kind="stable")
        keep = order[np.cumsum(lens[order]) <= budget]
        # a hit weighs 1 / its key's postings (tf-idf: a rare key says more about a work)
        weight = 1.0 / np.maximum(lens[keep], 1)
        hits, weights = [], []
        for b, e, sl in ranges:
            idx, which = _gather(b[keep], e[keep])
            hits.append(sl[idx])
            weights.append(weight[which])
        found = np.concatenate(hits) if hits else np.zeros(0, np.uint32)
        if not len(found):
            return np.zeros(0, np.int64)
        n_hits = np.bincount(found, minlength=len(alive))[: len(alive)]
        counts = np.bincount(found, np.concatenate(weights), minlength=len(alive))[: len(alive)]
        counts[~alive | (n_hits < min_hits)] = 0
        k = min(n, int(np.count_nonzero(counts)))
        if k <= 0:
            return np.zeros(0, np.int64)
        top = np.argpartition(-counts, k - 1)[:k]
        return top[np.lexsort((top, -counts[top]))]

    def features(self, slot: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(descriptors n x 32, keypoints n x 2 in ORB-copy px) of a slot, read from disk."""
        raw = self.blobs.get(slot)
        return None if raw is None else features_from_record(raw)

    def has(self, slot: int) -> bool:
        return self.blobs.has(slot)

    # -- upkeep -----------------------------------------------------------------------------

    def compacted(self, live: np.ndarray, params: OrbParams) -> OrbTable:
        out = OrbTable(params, self.directory)
        for new, old in enumerate(live.tolist()):
            f = self.features(old)
            out.add(new, *(f if f is not None else (None, None)))
        return out

    def memory_bytes(self) -> int:
        n = self._base_slots.nbytes + (0 if self._base_off is None else self._base_off.nbytes)
        n += sum(k.nbytes + s.nbytes for k, s in self._runs)
        return int(n + self.blobs.memory_bytes())

    def disk_bytes(self) -> int:
        return self.blobs.used_bytes

    def state(self) -> State:
        meta: dict[str, Any] = {"key_bits": list(self.key_bits), "ntotal": self.ntotal}
        sections: dict[str, Any] = {"slots": self._base_slots}
        if self._base_off is not None:
            sections["off"] = self._base_off
        if self._runs:  # as one run
            k = np.concatenate([k for k, _ in self._runs])
            s = np.concatenate([s for _, s in self._runs])
            o = np.argsort(k, kind="stable")
            sections["run_keys"], sections["run_slots"] = k[o], s[o]
        m, s = prefixed("blobs", self.blobs.state())
        return meta | m, sections | s

    @classmethod
    def from_state(
        cls, params: OrbParams, meta: dict, sections: dict, directory: str | None = None
    ) -> OrbTable:
        if tuple(meta["key_bits"]) != tuple(params.key_bits):
            raise ValueError("ORB table state was keyed on other bits")
        out = cls(params, directory)
        out.ntotal = int(meta["ntotal"])
        out._base_slots = sections["slots"]
        out._base_off = sections.get("off")
        if "run_keys" in sections:
            out._runs = [(sections["run_keys"], sections["run_slots"])]
        out.blobs = BlobStore.from_state(*sub("blobs", meta, sections), directory)
        return out
