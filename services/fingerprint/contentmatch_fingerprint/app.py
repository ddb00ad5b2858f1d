"""The fingerprint service: a consumer with health and metrics endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from contentmatch_fingerprint import jobs
from contentmatch_fingerprint.worker import INPUT_TOPICS, SERVICE, Fingerprinter
from contentmatch_shared.decode_limits import DecodeLimits
from contentmatch_shared.decode_sandbox import SandboxPool
from contentmatch_shared.http import install_common
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every decode runs in the sandbox's workers, under the limits of decode_limits.
        pool = SandboxPool(
            SERVICE,
            settings.cpu_workers,
            DecodeLimits.from_settings(settings, SERVICE),
            initializer=jobs.warm_up,
        )
        pool.start()
        try:
            await runtime.start()
            await runtime.add_consumer("fingerprint", INPUT_TOPICS, Fingerprinter(runtime, pool))
            yield
        finally:
            await runtime.stop()
            pool.close()

    app = FastAPI(title="contentmatch fingerprint", version="1", lifespan=lifespan)
    install_common(
        app,
        SERVICE,
        runtime.ready,
        runtime.broken,
        runtime.consumers,
        guard=runtime.guard(),
        retry_after_s=settings.unavailable_retry_after_s,
    )
    return app
