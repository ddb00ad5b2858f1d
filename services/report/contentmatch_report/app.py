"""The report service: writes signed reports from match results and serves them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from contentmatch_report.routes import reports
from contentmatch_report.signing import ReportSigner
from contentmatch_report.store import ReportStore
from contentmatch_report.thumbnails import warm_up
from contentmatch_report.worker import ReportWriter
from contentmatch_shared.decode_limits import DecodeLimits
from contentmatch_shared.decode_sandbox import SandboxPool
from contentmatch_shared.http import install_common
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.settings import Settings, get_settings
from contentmatch_shared.topics import UPLOADS_MATCHED

SERVICE = "report"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, SERVICE)
    signer = ReportSigner.from_config(
        settings.report_signing_key,
        settings.report_signing_key_file,
        valid_from=settings.report_signing_key_valid_from,
        previous=settings.report_previous_public_keys,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Thumbnails decode untrusted media: one sandboxed worker, under report's decode limits.
        pool = SandboxPool(
            SERVICE, 1, DecodeLimits.from_settings(settings, SERVICE), initializer=warm_up
        )
        pool.start()
        try:
            await runtime.start()
            store = ReportStore(runtime.store)
            app.state.keys = runtime.keys
            app.state.reports = store
            app.state.signer = signer
            await runtime.add_consumer(
                "report", [UPLOADS_MATCHED], ReportWriter(runtime, store, signer, pool)
            )
            yield
        finally:
            await runtime.stop()
            pool.close()

    app = FastAPI(title="contentmatch report", version="1", lifespan=lifespan)
    guard = runtime.guard(public_paths=["/v1/reports/public-key", "/v1/reports/public-keys"])
    install_common(
        app,
        SERVICE,
        runtime.ready,
        runtime.broken,
        runtime.consumers,
        guard=guard,
        retry_after_s=settings.unavailable_retry_after_s,
    )
    app.include_router(reports.router)
    return app
