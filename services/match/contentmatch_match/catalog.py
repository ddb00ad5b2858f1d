"""The in-memory view of the registry: work metadata plus one index per media type.

Derived state only: it is rebuilt from the compacted ``works.registry`` topic on every start,
or restored from a snapshot (``snapshot``/``restore``, format in ``index.snapshot``) and then
brought up to date by replaying the registry from the offsets the snapshot covers.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from typing import IO, Any

import numpy as np

from contentmatch_match.index.base import IndexHit, MediaIndex
from contentmatch_match.index.blobs import BlobStore
from contentmatch_match.index.object_state import object_state, restore_object
from contentmatch_match.index.snapshot import (
    SnapshotError,
    State,
    check_version,
    prefixed,
    read_snapshot,
    sub,
    write_snapshot,
)
from contentmatch_shared import metrics
from contentmatch_shared.events import (
    Match,
    MatchSegment,
    ObjectRef,
    WorkFingerprinted,
    WorkMetadata,
)
from contentmatch_shared.provenance import Provenance

# Bump when the catalog's own sections change meaning (each index versions its own state)
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class CatalogEntry:
    work_id: str
    tenant: str
    media_type: str
    metadata: WorkMetadata
    object: ObjectRef
    provenance: Provenance | None = None  # compact: what a match carries of it


def default_indexes() -> dict[str, MediaIndex]:
    from contentmatch_match.image import ImageIndex
    from contentmatch_match.index.audio import AudioIndex

    return {"image": ImageIndex(), "audio": AudioIndex()}


class WorkCatalog:
    def __init__(
        self, indexes: dict[str, MediaIndex] | None = None, shard: int | None = None
    ) -> None:
        self.indexes = indexes if indexes is not None else default_indexes()
        self._shard_label = "" if shard is None else str(shard)  # of its metrics
        # work id -> the entry as compact JSON: a million works hold no million model objects
        self._entries: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, work_id: str) -> CatalogEntry | None:
        raw = self._entries.get(work_id)
        return None if raw is None else _entry_from_json(json.loads(raw))

    def add_bulk_entries(self, template: CatalogEntry, work_ids: list[str]) -> None:
        """Entries like ``template`` for ``work_ids`` whose index rows were bulk-added (the
        scale benchmark): no index is touched."""
        head, _, tail = _entry_bytes(replace(template, work_id="\x00")).partition(b"\\u0000")
        with self._lock:
            self._entries.update((w, head + json.dumps(w).encode()[1:-1] + tail) for w in work_ids)

    def memory_bytes(self) -> int:
        """Resident bytes of the entries (approximate: bytes objects, keys and dict slots);
        the indexes count their own."""
        with self._lock:
            return sum(len(v) + 33 + 100 for v in self._entries.values())

    def work_ids(self) -> list[str]:
        return list(self._entries)

    def apply(self, work_id: str, event: WorkFingerprinted | None) -> None:
        """Apply one registry record: an entry (insert or replace) or a tombstone (remove)."""
        with self._lock:
            previous = self.get(work_id)
            if previous and (event is None or previous.media_type != event.media_type):
                self.indexes[previous.media_type].remove(work_id)
                del self._entries[work_id]
            if event is None:
                self._touch(previous.media_type if previous else None)
                return
            self.indexes[event.media_type].add(work_id, event.fingerprint)
            self._entries[work_id] = _entry_bytes(
                CatalogEntry(
                    work_id=work_id,
                    tenant=event.tenant,
                    media_type=event.media_type,
                    metadata=event.metadata,
                    object=event.object,
                    provenance=event.provenance.compact() if event.provenance else None,
                )
            )
            self._touch(event.media_type)

    def _touch(self, media_type: str | None) -> None:
        if media_type is None:
            return
        index = self.indexes[media_type]
        metrics.INDEX_ITEMS.labels(media_type, self._shard_label).set(len(index))
        metrics.INDEX_MEMORY.labels(media_type, self._shard_label).set(index.memory_bytes())
        metrics.INDEX_LAST_UPDATE.labels(media_type, self._shard_label).set(time.time())

    def search(self, media_type: str, fingerprint: object, limit: int = 10) -> list[Match]:
        hits = self.indexes[media_type].search(fingerprint, limit=limit)
        matches = [m for hit in hits if (m := self._to_match(hit, media_type)) is not None]
        # One order for equal scores, whichever shard found them (the merger sorts the same).
        return sorted(matches, key=lambda m: (-m.score, m.work_id))

    def _to_match(self, hit: IndexHit, media_type: str) -> Match | None:
        entry = self.get(hit.work_id)
        if entry is None:  # removed between search and lookup
            return None
        meta = entry.metadata
        return Match(
            work_id=hit.work_id,
            kind=meta.kind,
            title=meta.title,
            tenant=entry.tenant,
            score=round(hit.score, 4),
            policy=meta.policy,
            segments=[MatchSegment(**s.model_dump()) for s in hit.segments]
            if media_type == "audio"
            else None,
            media_type=entry.media_type,  # type: ignore[arg-type]
            signal=hit.signal,
            distance=hit.distance,
            evidence=dict(hit.evidence),
            identifiers=meta.identifiers,
            territories=meta.territories,
            ai_system=meta.ai_system,
            tdm_reservation=entry.provenance.tdm_reservation if entry.provenance else None,
            work_object=entry.object,
            work_provenance=entry.provenance,
        )

    # -- snapshot ---------------------------------------------------------------------------

    def snapshot(self, stream: IO[bytes], offsets: dict[str, Any]) -> int:
        """Write the catalog (entries and every index) to ``stream`` with ``offsets``, the
        registry positions it covers (JSON: e.g. partition -> next offset), which ``restore``
        hands back. The caller keeps the registry follower from applying records meanwhile
        (searches may go on). Returns the bytes written."""
        with self._lock:
            meta: dict[str, Any] = {
                "kind": "catalog",
                "version": SNAPSHOT_VERSION,
                "offsets": offsets,
                "created_at": time.time(),
                "media": sorted(self.indexes),
                "works": len(self._entries),
            }
            ids = [w.encode() for w in self._entries]
            sections: dict[str, Any] = {
                "entry_ids": np.frombuffer(b"".join(ids), np.uint8),
                "entry_id_lens": np.fromiter(map(len, ids), np.int64, len(ids)),
                "entries": np.frombuffer(b"".join(self._entries.values()), np.uint8),
                "entry_lens": np.fromiter(map(len, self._entries.values()), np.int64, len(ids)),
            }
            for media, index in self.indexes.items():
                m, s = prefixed(media, _index_state(index))
                meta |= m
                sections |= s
            return write_snapshot(stream, meta, sections)

    def restore(self, stream: IO[bytes]) -> dict[str, Any]:
        """Replace the catalog's content by a snapshot's; the registry offsets it covers.
        Raises ``SnapshotError`` (nothing changed) when the stream is not a snapshot this
        build can restore."""
        meta, sections = read_snapshot(stream, lambda _name: BlobStore.sink(None))
        check_version(meta, "catalog", SNAPSHOT_VERSION)
        if meta.get("media") != sorted(self.indexes):
            raise SnapshotError(
                f"snapshot holds indexes {meta.get('media')}, not {sorted(self.indexes)}"
            )
        indexes = {
            media: _restored(index, *sub(media, meta, sections))
            for media, index in self.indexes.items()
        }
        entries = dict(
            zip(
                (b.decode() for b in _split(sections["entry_ids"], sections["entry_id_lens"])),
                _split(sections["entries"], sections["entry_lens"]),
                strict=True,
            )
        )
        with self._lock:
            self.indexes, self._entries = indexes, entries
            for media in indexes:
                self._touch(media)
        return dict(meta["offsets"])


def _split(data: np.ndarray, lens: np.ndarray) -> list[bytes]:
    raw = data.tobytes()
    ends = np.cumsum(lens).tolist()
    return [raw[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def _entry_bytes(e: CatalogEntry) -> bytes:
    j: dict[str, Any] = {
        "w": e.work_id,
        "t": e.tenant,
        "m": e.media_type,
        "d": e.metadata.model_dump(mode="json", exclude_defaults=True),
        "o": e.object.model_dump(mode="json", exclude_none=True),
    }
    if e.provenance is not None:
        j["p"] = e.provenance.model_dump(mode="json")
    return json.dumps(j, separators=(",", ":")).encode()


def _entry_from_json(j: dict[str, Any]) -> CatalogEntry:
    return CatalogEntry(
        work_id=j["w"],
        tenant=j["t"],
        media_type=j["m"],
        metadata=WorkMetadata.model_validate(j["d"]),
        object=ObjectRef.model_validate(j["o"]),
        provenance=Provenance.model_validate(j["p"]) if j.get("p") else None,
    )


def _index_state(index: MediaIndex) -> State:
    """An index's own state when it has one (its tables), else its attributes walked."""
    state = getattr(index, "state", None)
    return state() if callable(state) else object_state(index)


def _restored(index: MediaIndex, meta: dict[str, Any], sections: dict[str, Any]) -> MediaIndex:
    """A new index like ``index`` holding the snapshot's state."""
    if callable(getattr(index, "restore_state", None)):
        fresh = index.fresh()  # type: ignore[attr-defined]
        fresh.restore_state(meta, sections)
        return fresh
    return restore_object(type(index), meta, sections)
