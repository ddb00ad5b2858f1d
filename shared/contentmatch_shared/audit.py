"""The audit log: who created, used, revoked and rotated keys, and who read which report.

One object per event under ``audit/<YYYY-MM-DD>/<event>-<id>.json`` in the state bucket, appended,
never rewritten: the id is derived from what the event is about (``dedupe``), so a replayed
request or a second replica writes the same name and the first record stands. Each event is also
a structured log line (logger ``contentmatch.audit``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from contentmatch_shared.events import utcnow
from contentmatch_shared.storage import ObjectStore

if TYPE_CHECKING:
    from contentmatch_shared.auth import ApiKey

log = logging.getLogger("contentmatch.audit")
_MAX_DAYS_READ = 31
_MAX_EVENTS_PER_DAY = 20_000


class AuditLog:
    def __init__(self, store: ObjectStore, service: str) -> None:
        self._store = store
        self._bucket = store.settings.bucket_state
        self._service = service

    async def record(
        self,
        event: str,
        *,
        actor: ApiKey,
        subject: dict[str, Any],
        dedupe: str,
        first_wins: bool = False,
    ) -> None:
        """Append one event. A failure to store it is logged, never raised to the caller's
        client: the action it describes has already happened."""
        at = utcnow()
        entry = {
            "event": event,
            "at": at.isoformat(),
            "service": self._service,
            "actor": {"key_id": actor.key_id, "role": actor.role, "tenant": actor.tenant},
            "subject": subject,
        }
        log.info("audit %s", json.dumps(entry, separators=(",", ":"), sort_keys=True))
        digest = hashlib.sha256(f"{event}\x00{dedupe}".encode()).hexdigest()[:32]
        key = f"audit/{at.date().isoformat()}/{event}-{digest}.json"
        try:
            if first_wins and await self._store.exists(self._bucket, key):
                return
            await self._store.put_json(self._bucket, key, entry)
        except Exception:
            log.exception("audit event %s could not be stored", event)

    async def report_read(self, actor: ApiKey, report_id: str, resource: str) -> None:
        """Who read which report (or which of its assets): once per key, resource and day."""
        day = utcnow().date().isoformat()
        await self.record(
            "report_read",
            actor=actor,
            subject={"report_id": report_id, "resource": resource},
            dedupe=f"{actor.key_id}\x00{resource}\x00{day}",
            first_wins=True,
        )

    async def read(self, since: datetime, *, limit: int) -> list[dict[str, Any]]:
        """Events at or after ``since`` (at most ``_MAX_DAYS_READ`` days of them), oldest first."""
        today = utcnow().date()
        day: date = max(since.date(), today - timedelta(days=_MAX_DAYS_READ - 1))
        out: list[dict[str, Any]] = []
        while day <= today and len(out) < limit:
            names = await self._store.list_keys(
                self._bucket, f"audit/{day.isoformat()}/", limit=_MAX_EVENTS_PER_DAY
            )
            values = await asyncio.gather(*(self._store.get_json(self._bucket, n) for n in names))
            events = [v for v in values if v and datetime.fromisoformat(v["at"]) >= since]
            out.extend(sorted(events, key=lambda v: str(v["at"])))
            day += timedelta(days=1)
        return out[:limit]
