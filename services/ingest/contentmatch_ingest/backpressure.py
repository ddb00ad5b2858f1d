"""Backpressure: new uploads wait while the pipeline is too far behind.

Accepting more than the pipeline processes only makes every accepted upload slower; refusing
with ``Retry-After`` keeps the latency of what was accepted bounded (about the backlog limit over
the pipeline's throughput) and tells a platform when to come back. Nothing is stored for a refused
request: the check runs before the body is read.
"""

from __future__ import annotations

from fastapi import Request

from contentmatch_shared import metrics
from contentmatch_shared.http import ApiError
from contentmatch_shared.kafka.backlog import BacklogMonitor


def refuse_when_backlogged(request: Request) -> None:
    """Raise 503 ``pipeline_backlogged`` with ``Retry-After`` while the backlog is at its limit."""
    backlog: BacklogMonitor = request.app.state.backlog
    if not backlog.full():
        return
    metrics.UPLOADS_REFUSED.labels("backlog").inc()
    retry_after = request.app.state.settings.backlog_retry_after_s
    raise ApiError(
        503,
        "pipeline_backlogged",
        f"the pipeline is {backlog.records} records behind (limit {backlog.limit}); nothing was "
        f"stored, retry after {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )
