"""Which shard holds a work, and what a shard served by this process is made of.

A work lives in exactly one of ``CM_MATCH_SHARDS`` shards, chosen by a stable hash of its id
(the same in every process, release and Python run: never ``hash()``). Every shard follows the
whole ``works.registry`` topic and keeps only its works; every upload is searched in every shard
(one consumer group per shard) and the answers are merged (``merger``). docs/sharding.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from contentmatch_match.catalog import WorkCatalog
from contentmatch_shared.match_groups import MERGER_GROUP, upload_group

__all__ = ["MERGER_GROUP", "ShardIndex", "SnapshotOrigin", "shard_of", "upload_group"]


def shard_of(work_id: str, shards: int) -> int:
    """The shard of ``work_id`` among ``shards``: the first 8 bytes of its BLAKE2b, modulo."""
    if shards <= 1:
        return 0
    digest = hashlib.blake2b(work_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


@dataclass
class SnapshotOrigin:
    """The snapshot a shard started from: its key, the registry offsets it covers, its works."""

    key: str
    offsets: dict[int, int]
    works: int
    created_at: str
    load_s: float


@dataclass
class ShardIndex:
    """One shard served by this process: its catalog and where its registry replay starts."""

    shard: int
    shards: int
    catalog: WorkCatalog
    # partition -> first registry offset not yet in the catalog (from the snapshot loaded).
    start_offsets: dict[int, int] = field(default_factory=dict)
    origin: SnapshotOrigin | None = None
    origin_problem: str | None = None  # why no snapshot was loaded, if one was tried
    replayed: int = 0  # registry records applied since start (after the snapshot)
    since_snapshot: int = 0  # records applied since the last snapshot written (or loaded)
    last_snapshot_at: float = 0.0  # time.monotonic() of that snapshot (0: none)

    def holds(self, work_id: str) -> bool:
        return shard_of(work_id, self.shards) == self.shard
