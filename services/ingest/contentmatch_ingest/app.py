"""The ingest service: keys, works, uploads and their status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from contentmatch_ingest.records import RecordStore
from contentmatch_ingest.routes import audit, direct_uploads, keys, uploads, works
from contentmatch_ingest.status import STATUS_TOPICS, StatusRecorder
from contentmatch_shared.http import install_common
from contentmatch_shared.kafka.backlog import BacklogMonitor
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.settings import Settings, get_settings
from contentmatch_shared.upload_tokens import load_secret

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
        app.state.runtime = runtime
        app.state.store = runtime.store
        app.state.keys = runtime.keys
        app.state.audit = runtime.audit
        app.state.producer = runtime.producer
        app.state.records = records
        app.state.upload_token_secret = secret = load_secret(settings)
        app.state.backlog = backlog = BacklogMonitor(settings)
        runtime.spawn(backlog.run(), "backlog-monitor")
        await runtime.add_consumer(
            "ingest-status", STATUS_TOPICS, StatusRecorder(records, settings, secret, SERVICE)
        )
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="contentmatch ingest", version="1", lifespan=lifespan)
    guard = runtime.guard(
        media_routes=[("POST", "/v1/works"), ("POST", "/v1/uploads")],
        media_limit_bytes=settings.max_upload_bytes + _FORM_OVERHEAD_BYTES,
    )
    install_common(
        app,
        SERVICE,
        runtime.ready,
        runtime.broken,
        runtime.consumers,
        guard=guard,
        retry_after_s=settings.unavailable_retry_after_s,
    )
    app.include_router(keys.router)
    app.include_router(audit.router)
    app.include_router(works.router)
    app.include_router(direct_uploads.router)
    app.include_router(uploads.router)
    return app
