"""Index snapshots in object storage: a shard's catalog and the registry offsets it covers.

A restarted replica loads its shard's latest snapshot and replays only the registry records
from those offsets on; without a usable one it replays the whole registry, as before.

Layout in ``bucket_state`` (one folder per shard count, so a resharded deployment never loads a
snapshot cut for another split)::

    match/snapshots/<N>-shards/shard-<k>/<created>-<offsets>.snap
    match/snapshots/<N>-shards/shard-<k>/latest.json   {"key", "sha256", "bytes", "offsets", ...}

A ``.snap`` file is the catalog's own snapshot container (``WorkCatalog.snapshot``, format in
``index.snapshot``: versioned, every section checksummed, no pickle) whose ``offsets`` metadata
names this split: ``{"shard", "shards", "topic", "partitions": {partition: next offset}}``.
It is written to a temporary file and streamed to S3 (never a second copy of the index in
memory), and read back the same way. The pointer carries the file's sha256. Anything
unexpected (pointer or file missing, digest, container version, shard, topic, offsets past the
registry's end) makes the snapshot unusable: the caller logs why and replays the registry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from contentmatch_match.catalog import WorkCatalog
from contentmatch_match.index.snapshot import SnapshotError, read_header
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore
from contentmatch_shared.topics import WORKS_REGISTRY

log = logging.getLogger(__name__)

_CHUNK = 1 << 22


class SnapshotUnusable(Exception):
    """This snapshot cannot be loaded (the message says why); replay the registry instead."""


@dataclass(frozen=True)
class Snapshot:
    """Who a snapshot is for and what it covers (its container's ``offsets`` metadata)."""

    shard: int
    shards: int
    topic: str
    partitions: dict[int, int]  # partition -> first offset not in the snapshot

    def as_meta(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "shards": self.shards,
            "topic": self.topic,
            "partitions": {str(p): o for p, o in sorted(self.partitions.items())},
        }

    @classmethod
    def from_meta(cls, meta: Any) -> Snapshot:
        try:
            return cls(
                shard=int(meta["shard"]),
                shards=int(meta["shards"]),
                topic=str(meta["topic"]),
                partitions={int(p): int(o) for p, o in meta["partitions"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotUnusable(f"its offsets metadata is malformed: {exc!r}") from exc


@dataclass(frozen=True)
class Captured:
    """A snapshot written to a local file, ready to store (the caller removes the file)."""

    about: Snapshot
    path: str
    size: int
    works: int
    created_at: str


def capture(catalog: WorkCatalog, about: Snapshot, directory: str | None = None) -> Captured:
    """Write ``catalog`` as of ``about.partitions`` to a temporary file (the caller applies no
    registry record meanwhile; searches go on)."""
    fd, path = tempfile.mkstemp(prefix="cm-snapshot-", suffix=".snap", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            size = catalog.snapshot(out, about.as_meta())
    except BaseException:
        os.unlink(path)
        raise
    return Captured(about, path, size, len(catalog), datetime.now(UTC).isoformat())


def check(header: dict[str, Any], want: Snapshot, end_offsets: dict[int, int]) -> Snapshot:
    """What the snapshot covers, once it is known to be for ``want``'s split and to fit the
    registry as it is now (else SnapshotUnusable)."""
    meta = header.get("meta") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("kind") != "catalog":
        raise SnapshotUnusable("not a catalog snapshot")
    about = Snapshot.from_meta(meta.get("offsets"))
    for name in ("shard", "shards", "topic"):
        if getattr(about, name) != getattr(want, name):
            raise SnapshotUnusable(
                f"{name} is {getattr(about, name)!r}, this replica needs {getattr(want, name)!r}"
            )
    if problem := offsets_problem(about.partitions, end_offsets):
        raise SnapshotUnusable(problem)
    return about


def offsets_problem(offsets: dict[int, int], end_offsets: dict[int, int]) -> str | None:
    """Why a snapshot's offsets do not fit the registry topic as it is now, or None."""
    if set(offsets) != set(end_offsets):
        return (
            f"it covers partitions {sorted(offsets)}, the registry has {sorted(end_offsets)} "
            "(topic recreated or repartitioned)"
        )
    past = {p: o for p, o in offsets.items() if o > end_offsets[p]}
    if past:
        return f"its offsets {past} are past the registry's end {end_offsets} (topic recreated)"
    return None


def load(stream: IO[bytes], catalog: WorkCatalog, want: Snapshot, ends: dict[int, int]) -> Snapshot:
    """Check the header, then restore ``catalog`` from ``stream`` (seekable); what it covers."""
    try:
        about = check(read_header(stream), want, ends)
        stream.seek(0)
        catalog.restore(stream)
    except SnapshotError as exc:
        raise SnapshotUnusable(str(exc)) from exc
    return about


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class SnapshotStore:
    """Where one deployment's snapshots live (``bucket_state``), and how they are kept."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self._settings = settings
        self._store = store
        self.bucket = settings.bucket_state
        self.topic = settings.topic(WORKS_REGISTRY.name)

    def folder(self, shard: int, shards: int) -> str:
        return f"match/snapshots/{shards}-shards/shard-{shard}/"

    def pointer(self, shard: int, shards: int) -> str:
        return self.folder(shard, shards) + "latest.json"

    async def write(self, snap: Captured) -> str:
        """Store the file, then move the pointer to it, then drop the oldest beyond the kept."""
        about = snap.about
        stamp = snap.created_at.replace(":", "").replace("-", "")[:15]
        position = sum(about.partitions.values())
        key = f"{self.folder(about.shard, about.shards)}{stamp}-{position:012d}.snap"
        f = await asyncio.to_thread(open, snap.path, "rb")
        try:
            stored = await self._store.put_stream(self.bucket, key, f)
        finally:
            f.close()
        await self._store.put_json(
            self.bucket,
            self.pointer(about.shard, about.shards),
            {
                "key": key,
                "sha256": stored.sha256,
                "bytes": stored.size,
                "offsets": about.as_meta()["partitions"],
                "works": snap.works,
                "created_at": snap.created_at,
            },
        )
        folder = self.folder(about.shard, about.shards)
        files = [k for k in await self._store.list_keys(self.bucket, folder) if k.endswith(".snap")]
        for old in sorted(files)[: -self._settings.match_snapshots_kept]:
            if old != key:
                await self._store.delete(self.bucket, old)
        return key

    async def fetch(self, shard: int, shards: int, path: str) -> dict[str, Any] | None:
        """Download the latest snapshot to ``path`` (digest checked); its pointer, or None when
        there is no snapshot yet."""
        pointer = await self._store.get_json(self.bucket, self.pointer(shard, shards))
        if pointer is None:
            return None
        if not isinstance(pointer, dict) or not isinstance(pointer.get("key"), str):
            raise SnapshotUnusable("pointer latest.json is malformed")
        if not await self._store.exists(self.bucket, pointer["key"]):
            raise SnapshotUnusable(f"{pointer['key']} named by latest.json is missing")
        await self._store.download_to(self.bucket, pointer["key"], path)

        if await asyncio.to_thread(_sha256_of, path) != pointer.get("sha256"):
            raise SnapshotUnusable(f"{pointer['key']} does not match its sha256")
        return pointer


def elapsed(started: float) -> float:
    return round(time.perf_counter() - started, 3)
