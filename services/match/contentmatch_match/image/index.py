"""ImageIndex: the match service's image index, a pipeline of proposers and judges.

Storage is one table per stored code (``tables``, built from the signal registry
``signals.TABLES``) and a side table of works; searching runs the stages of ``pipeline``
under one ``threading.RLock`` (adds from the registry follower, searches from the upload
matcher). ``add`` of a known work id replaces it. ``state``/``restore_state`` snapshot every
table exactly (``index.snapshot``): a restored index gives the same verdicts.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np

from contentmatch_match.image.config import DEFAULT, ImageMatchConfig
from contentmatch_match.image.orb_table import OrbTable, SyntheticOrb
from contentmatch_match.image.pipeline import Stage, default_stages, run
from contentmatch_match.image.query import ImageQuery
from contentmatch_match.image.signals import TABLES
from contentmatch_match.image.signals.crops import CROP_BYTES, crop_ladder, whole_codes
from contentmatch_match.image.signals.hashes import field_of, work_hashes
from contentmatch_match.image.signals.orb import orb_features
from contentmatch_match.image.signals.thumbnail import thumb_from_payload
from contentmatch_match.image.signals.vertical import vertical_dhash
from contentmatch_match.image.stages import SearchContext
from contentmatch_match.image.tables import CodeTable, Works
from contentmatch_match.image.thumbs import work_thumbnail
from contentmatch_match.index.base import IndexHit
from contentmatch_match.index.snapshot import SnapshotError, State, check_version, prefixed, sub

# Bump when what the tables store changes meaning (a code's layout, a derived code)
SNAPSHOT_VERSION = 1


class ImageIndex:
    """MediaIndex for images: whole-picture hashes, derived codes and ORB features proposing,
    thumbnails judging (see ``pipeline``)."""

    def __init__(
        self,
        use_orb: bool = True,
        use_dense: bool = True,
        config: ImageMatchConfig = DEFAULT,
        stages: tuple[Stage, ...] | None = None,
        directory: str | None = None,
    ) -> None:
        """``directory``: where thumbnails are kept on disk (unlinked temporary files; the
        system's temporary directory when None)."""
        self.directory = directory
        self.use_orb = use_orb
        self.use_dense = use_dense  # False: hash/ORB rules only (no thumbnails kept)
        self.config = config
        self.stages = stages if stages is not None else default_stages(config)
        self._lock = threading.RLock()
        self._works = Works(directory)
        self._tables = {spec.name: CodeTable(spec) for spec in TABLES}
        self._orb = OrbTable(config.orb, directory)

    # -- MediaIndex -------------------------------------------------------------------------

    def add(self, work_id: str, fingerprint: object) -> None:
        cfg = self.config
        hashes = work_hashes(fingerprint)
        extra = field_of(fingerprint, "extra") or {}
        orb = orb_features(extra.get("orb")) if self.use_orb else None
        thumb = thumb_from_payload(extra.get("thumb")) if self.use_dense else None
        small = work_thumbnail(thumb, cfg.dense_measure.work_thumb_side) if thumb else None
        dv = vertical_dhash(thumb.grey, cfg.codes.tie) if thumb else np.zeros(8, np.uint8)
        ladder = crop_ladder(thumb.grey, cfg.codes) if thumb else None
        wholes = whole_codes(thumb, cfg.codes, cfg.boxes) if thumb else None
        has_orb = orb is not None and len(orb.desc) > 0
        with self._lock:
            if work_id in self._works.slot_of:
                self._remove_locked(work_id)
            slot = self._works.add(
                [work_id],
                np.array([hashes.quality]),
                np.array([hashes.has_dhash]),
                [small],
                [(orb.width, orb.height) if has_orb else None],
            )
            t = self._tables
            t["phash"].add(slot, hashes.phash[None])
            t["pdq"].add(slot, hashes.pdq[None])
            t["dhash"].add(slot, hashes.dhash[None])
            t["dhash_v"].add(slot, dv[None])
            if ladder is not None:
                t["crop"].add(slot, ladder)
            if wholes is not None:
                t["whole"].add(slot, wholes[0], box=wholes[1])
            if has_orb:
                self._orb.add(slot, orb.desc, orb.kp)
            else:
                self._orb.add(slot, None, None)

    def add_hash_codes(
        self,
        work_ids: list[str],
        phash: np.ndarray,
        dhash: np.ndarray,
        pdq: np.ndarray,
        dhash_v: np.ndarray | None = None,
        crops: np.ndarray | None = None,
        wholes: np.ndarray | None = None,
        orb: SyntheticOrb | None = None,
    ) -> None:
        """Bulk-add works known by their codes only (uint8 rows of 8, 8, 32 and optionally 8
        bytes, optionally n x len(crop_rungs) x 32 crop codes and n x 32 whole-picture
        codes; no thumbnail, so nothing they propose can be verified; ``orb``: their ORB
        keys, into an empty ORB table): the million-work scale benchmarks build their
        index this way in seconds, and its scans cost what real codes would. New ids only."""
        n = len(work_ids)
        rungs = len(self.config.codes.crop_rungs)
        if dhash_v is None:
            dhash_v = np.zeros((n, 8), np.uint8)
        if not (len(phash) == len(dhash) == len(pdq) == len(dhash_v) == n):
            raise ValueError("one row of each code per work id")
        if crops is not None and crops.shape != (n, rungs, CROP_BYTES):
            raise ValueError("one crop ladder per work id")
        if wholes is not None and wholes.shape != (n, CROP_BYTES):
            raise ValueError("one whole-picture code per work id")
        with self._lock:
            if any(w in self._works.slot_of for w in work_ids):
                raise ValueError("add_hash_codes only adds new work ids")
            base = self._works.add_bulk(list(work_ids), None)
            slots = np.arange(base, base + n, dtype=np.int32)
            t = self._tables
            for name, codes in (("phash", phash), ("dhash", dhash), ("pdq", pdq)):
                t[name].add_rows(slots, codes)
            t["dhash_v"].add_rows(slots, dhash_v)
            if crops is not None:
                t["crop"].add_rows(np.repeat(slots, rungs), crops.reshape(-1, CROP_BYTES))
            if wholes is not None:
                box = np.tile(np.array([0, 0, 1, 1], np.float32), (n, 1))
                t["whole"].add_rows(slots, wholes, box=box)
            if orb is not None:
                self._orb.add_synthetic(n, orb)
                self._works.orb_wh.a[base : base + n] = orb.size
            else:
                self._orb.add_empty(n)

    def remove(self, work_id: str) -> None:
        tp = self.config.tables
        with self._lock:
            if work_id in self._works.slot_of:
                self._remove_locked(work_id)
                dead = self._works.dead
                if dead > tp.compact_ratio * len(self._works.work_ids) and dead >= tp.compact_min:
                    self._compact_locked()

    def __len__(self) -> int:
        with self._lock:
            return len(self._works)

    def memory_bytes(self) -> int:
        """Resident bytes (the thumbnails on disk are not counted: ``disk_bytes``)."""
        with self._lock:
            n = sum(t.memory_bytes() for t in self._tables.values()) + self._orb.memory_bytes()
            return int(n + self._works.memory_bytes())

    def disk_bytes(self) -> int:
        with self._lock:
            return self._works.disk_bytes() + self._orb.disk_bytes()

    # -- snapshot ---------------------------------------------------------------------------

    def _layout(self) -> str:
        """What the stored state depends on besides the code: the derived codes' parameters
        and which signals are kept."""
        cfg = self.config
        what = (
            repr(cfg.codes),
            repr(cfg.boxes),
            cfg.orb.key_bits,
            cfg.dense_measure.work_thumb_side,
            self.use_orb,
            self.use_dense,
            [(t.name, t.nbytes, t.one_per_work, sorted(t.extras)) for t in TABLES],
        )
        return hashlib.sha256(repr(what).encode()).hexdigest()[:16]

    def state(self) -> State:
        """The index's snapshot sections (take them under the caller's pause of adds: the
        registry follower must not add while they are written)."""
        with self._lock:
            meta: dict[str, Any] = {
                "kind": "image",
                "version": SNAPSHOT_VERSION,
                "layout": self._layout(),
            }
            sections: dict[str, Any] = {}
            for name, part in (
                ("works", self._works.state()),
                ("orb", self._orb.state()),
                *((f"table_{n}", t.state()) for n, t in self._tables.items()),
            ):
                m, s = prefixed(name, part)
                meta |= m
                sections |= s
            return meta, sections

    def fresh(self) -> ImageIndex:
        """An empty index configured as this one."""
        return ImageIndex(self.use_orb, self.use_dense, self.config, self.stages, self.directory)

    def restore_state(self, meta: dict[str, Any], sections: dict[str, Any]) -> None:
        """Replace this index's content by a snapshot's (refused when written by a build or
        configuration that stores other codes)."""
        check_version(meta, "image", SNAPSHOT_VERSION)
        if meta.get("layout") != self._layout():
            raise SnapshotError(
                "image snapshot was written with other codes or signals (configuration "
                "changed): replay the registry instead"
            )
        works = Works.from_state(*sub("works", meta, sections), self.directory)
        tables = {
            spec.name: CodeTable.from_state(spec, *sub(f"table_{spec.name}", meta, sections))
            for spec in TABLES
        }
        orb = OrbTable.from_state(self.config.orb, *sub("orb", meta, sections), self.directory)
        with self._lock:
            self._works, self._tables, self._orb = works, tables, orb

    def search(
        self, fingerprint: object, limit: int = 10, *, second_tier: str = "auto"
    ) -> list[IndexHit]:
        """Matches best first. ``second_tier``: "auto" (ORB only when the other stages find
        nothing), "always" or "never"."""
        q = ImageQuery.parse(fingerprint)
        with self._lock:
            if not len(self._works):
                return []
            ctx = SearchContext(
                q, self.config, self._works, self._tables, self.use_dense, self.use_orb, self._orb
            )
            hits = run(self.stages, ctx, second_tier)
        return sorted(hits, key=lambda h: (-h.score, h.work_id))[:limit]

    # -- internals --------------------------------------------------------------------------

    def _remove_locked(self, work_id: str) -> None:
        self._works.remove(work_id)

    def _compact_locked(self) -> None:
        live = self._works.live()
        self._works = self._works.compacted(live)
        self._tables = {name: t.compacted(live) for name, t in self._tables.items()}
        self._orb = self._orb.compacted(live, self.config.orb)
