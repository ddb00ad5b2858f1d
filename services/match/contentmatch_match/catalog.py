"""The in-memory view of the registry: work metadata plus one index per media type.

Derived state only: it is rebuilt from the compacted ``works.registry`` topic on every start.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from contentmatch_match.index.base import IndexHit, MediaIndex
from contentmatch_shared import metrics
from contentmatch_shared.events import (
    Match,
    MatchSegment,
    ObjectRef,
    WorkFingerprinted,
    WorkMetadata,
)


@dataclass(frozen=True)
class CatalogEntry:
    work_id: str
    tenant: str
    media_type: str
    metadata: WorkMetadata
    object: ObjectRef


def default_indexes() -> dict[str, MediaIndex]:
    from contentmatch_match.image import ImageIndex
    from contentmatch_match.index.audio import AudioIndex

    return {"image": ImageIndex(), "audio": AudioIndex()}


class WorkCatalog:
    def __init__(self, indexes: dict[str, MediaIndex] | None = None) -> None:
        self.indexes = indexes if indexes is not None else default_indexes()
        self._entries: dict[str, CatalogEntry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, work_id: str) -> CatalogEntry | None:
        return self._entries.get(work_id)

    def apply(self, work_id: str, event: WorkFingerprinted | None) -> None:
        """Apply one registry record: an entry (insert or replace) or a tombstone (remove)."""
        with self._lock:
            previous = self._entries.get(work_id)
            if previous and (event is None or previous.media_type != event.media_type):
                self.indexes[previous.media_type].remove(work_id)
                del self._entries[work_id]
            if event is None:
                self._touch(previous.media_type if previous else None)
                return
            self.indexes[event.media_type].add(work_id, event.fingerprint)
            self._entries[work_id] = CatalogEntry(
                work_id=work_id,
                tenant=event.tenant,
                media_type=event.media_type,
                metadata=event.metadata,
                object=event.object,
            )
            self._touch(event.media_type)

    def _touch(self, media_type: str | None) -> None:
        if media_type is None:
            return
        index = self.indexes[media_type]
        metrics.INDEX_ITEMS.labels(media_type).set(len(index))
        metrics.INDEX_MEMORY.labels(media_type).set(index.memory_bytes())
        metrics.INDEX_LAST_UPDATE.labels(media_type).set(time.time())

    def search(self, media_type: str, fingerprint: object, limit: int = 10) -> list[Match]:
        hits = self.indexes[media_type].search(fingerprint, limit=limit)
        return [m for hit in hits if (m := self._to_match(hit, media_type)) is not None]

    def _to_match(self, hit: IndexHit, media_type: str) -> Match | None:
        entry = self._entries.get(hit.work_id)
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
            work_object=entry.object,
        )
