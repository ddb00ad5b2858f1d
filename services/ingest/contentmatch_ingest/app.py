"""The ingest service: keys, works, uploads and their status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from contentmatch_ingest.records import RecordStore
from contentmatch_ingest.routes import keys, uploads, works
from contentmatch_ingest.status import STATUS_TOPICS, StatusRecorder
from contentmatch_shared.http import BodyLimitMiddleware, install_common
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.settings import Settings, get_settings

SERVICE = "ingest"
# Multipart framing and the metadata field ride on top of the file itself.
_FORM_OVERHEAD_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        records = RecordStore(runtime.store)
        app.state.settings = settings
        app.state.store = runtime.store
        app.state.keys = runtime.keys
        app.state.producer = runtime.producer
        app.state.records = records
        await runtime.add_consumer("ingest-status", STATUS_TOPICS, StatusRecorder(records))
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="contentmatch ingest", version="1", lifespan=lifespan)
    install_common(app, SERVICE, runtime.ready, runtime.broken, runtime.consumers)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes + _FORM_OVERHEAD_BYTES)
    app.include_router(keys.router)
    app.include_router(works.router)
    app.include_router(uploads.router)
    return app
