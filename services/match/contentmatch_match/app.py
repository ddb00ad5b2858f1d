"""The match service: follows the registry into the indexes of its shards and matches uploads.

Each served shard is a catalog fed by one registry follower and searched by its own consumer
group on ``uploads.fingerprinted``; with several shards their answers go to ``match.partials``
and the merger (in the processes where it runs) publishes the verdict. docs/sharding.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from contentmatch_match.catalog import WorkCatalog
from contentmatch_match.matcher import UploadMatcher
from contentmatch_match.merger import PartialMerger
from contentmatch_match.registry import RegistryFollower
from contentmatch_match.sharding import MERGER_GROUP, ShardIndex, upload_group
from contentmatch_match.snapshots import SnapshotStore
from contentmatch_shared import metrics
from contentmatch_shared.auth import CurrentKey, require_role
from contentmatch_shared.http import install_common
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.settings import Settings, get_settings
from contentmatch_shared.topics import MATCH_PARTIALS, UPLOADS_FINGERPRINTED

SERVICE = "match"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, SERVICE)
    n = settings.match_shards
    shards = {k: ShardIndex(k, n, WorkCatalog(shard=k)) for k in settings.served_shards()}
    snapshot_store = SnapshotStore(settings, runtime.store) if settings.match_snapshots else None
    follower = RegistryFollower(settings, shards, snapshot_store) if shards else None
    # A replica serving no shard is a merger, whatever the shard count it was told.
    merger = PartialMerger(runtime) if settings.match_merger and (n > 1 or not shards) else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        app.state.keys = runtime.keys
        if follower is not None:
            await follower.start()
            runtime.spawn(follower.run(), "registry-follower")
            for shard in shards.values():
                await runtime.add_consumer(
                    upload_group(shard.shard, n),
                    [UPLOADS_FINGERPRINTED],
                    UploadMatcher(runtime, shard, follower),
                )
        else:
            metrics.REGISTRY_CAUGHT_UP.set(1)  # a merger only: no index to load
        if merger is not None:
            merger.runner = await runtime.add_consumer(MERGER_GROUP, [MATCH_PARTIALS], merger)
            runtime.spawn(merger.sweep(), "merge-sweeper")
        try:
            yield
        finally:
            await runtime.stop()

    async def ready() -> str | None:
        if follower is not None and not follower.caught_up:
            return "the index is still reading the registry"
        return await runtime.ready()

    app = FastAPI(title="contentmatch match", version="1", lifespan=lifespan)
    install_common(
        app,
        SERVICE,
        ready,
        runtime.broken,
        runtime.consumers,
        guard=runtime.guard(),
        retry_after_s=settings.unavailable_retry_after_s,
    )

    @app.get("/v1/index", operation_id="index_stats", tags=["index"])
    async def index_stats(api_key: CurrentKey, request: Request) -> dict[str, Any]:
        require_role(api_key, "operator")
        catalogs = [s.catalog for s in shards.values()]
        indexes: dict[str, dict[str, int]] = {}
        for catalog in catalogs:
            for name, index in catalog.indexes.items():
                row = indexes.setdefault(name, {"items": 0, "memory_bytes": 0})
                row["items"] += len(index)
                row["memory_bytes"] += index.memory_bytes()
        return {
            "works": sum(len(c) for c in catalogs),
            "caught_up": follower.caught_up if follower else True,
            "skipped_records": follower.skipped if follower else 0,
            "indexes": indexes,
            "shards": n,
            "merger": merger is not None,
            "registry_records_read": follower.records_read if follower else 0,
            "ready_after_s": follower.ready_after_s if follower else None,
            "served": [_shard_stats(s) for s in shards.values()],
        }

    @app.post("/v1/index/snapshots", operation_id="write_index_snapshots", tags=["index"])
    async def write_snapshots(api_key: CurrentKey, request: Request) -> dict[str, Any]:
        """Write every served shard's snapshot now (before a planned restart, say)."""
        require_role(api_key, "operator")
        if follower is None or snapshot_store is None:
            return {"snapshots": []}
        return {"snapshots": await follower.snapshot_now()}

    return app


def _shard_stats(shard: ShardIndex) -> dict[str, Any]:
    origin = shard.origin
    return {
        "shard": shard.shard,
        "works": len(shard.catalog),
        "replayed_records": shard.replayed,
        "snapshot": None
        if origin is None
        else {
            "key": origin.key,
            "works": origin.works,
            "offsets": {str(p): o for p, o in origin.offsets.items()},
            "created_at": origin.created_at,
            "load_s": origin.load_s,
        },
        "snapshot_problem": shard.origin_problem,
    }
