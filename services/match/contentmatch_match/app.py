"""The match service: follows the registry into its indexes and matches uploads against them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from contentmatch_match.catalog import WorkCatalog
from contentmatch_match.matcher import UploadMatcher
from contentmatch_match.registry import RegistryFollower
from contentmatch_shared.auth import CurrentKey, require_role
from contentmatch_shared.http import install_common
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.settings import Settings, get_settings
from contentmatch_shared.topics import UPLOADS_FINGERPRINTED

SERVICE = "match"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, SERVICE)
    catalog = WorkCatalog()
    follower = RegistryFollower(settings, catalog)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        app.state.keys = runtime.keys
        await follower.start()
        runtime.spawn(follower.run(), "registry-follower")
        await runtime.add_consumer(
            "match", [UPLOADS_FINGERPRINTED], UploadMatcher(runtime, catalog, follower)
        )
        try:
            yield
        finally:
            await runtime.stop()

    async def ready() -> str | None:
        if not follower.caught_up:
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
        return {
            "works": len(catalog),
            "caught_up": follower.caught_up,
            "skipped_records": follower.skipped,
            "indexes": {
                name: {"items": len(index), "memory_bytes": index.memory_bytes()}
                for name, index in catalog.indexes.items()
            },
        }

    return app
