"""Reports in the reports bucket, and the listing indexes beside them.

Layout (bucket ``CM_BUCKET_REPORTS``):
- ``reports/<report_id>.json``: the signed report, the exact bytes the API serves;
- ``index/<scope>/<scope_id>/<kind|any>/<created_at>_<report_id>.json``: a summary per listing
  scope (``all/_``, ``tenant/<work tenant>``, ``platform/<platform tenant>``, ``work/<work_id>``).
Index keys sort by creation time, so a cursor (the last key seen) pages forward without
duplicates or gaps among reports that existed when the listing started.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Any

from contentmatch_report.builder import summary_of
from contentmatch_shared.storage import ObjectStore

_TS_FORMAT = "%Y%m%dT%H%M%S%fZ"


def ts_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TS_FORMAT)


def report_key(report_id: str) -> str:
    return f"reports/{report_id}.json"


def scopes_of(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("all", "_"),
        ("tenant", report["work"]["tenant"]),
        ("platform", report["upload"]["tenant"]),
        ("work", report["work"]["work_id"]),
    ]


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    padded = cursor + "=" * (-len(cursor) % 4)
    return base64.urlsafe_b64decode(padded.encode()).decode()


class ReportStore:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._bucket = store.settings.bucket_reports

    async def get_bytes(self, report_id: str) -> bytes | None:
        return await self._store.get_bytes(self._bucket, report_key(report_id))

    async def get(self, report_id: str) -> dict[str, Any] | None:
        data = await self.get_bytes(report_id)
        return None if data is None else json.loads(data)

    async def put(self, report: dict[str, Any]) -> str:
        """Store the report, then its index entries (a crash in between is healed by the replay)."""
        data = json.dumps(report, ensure_ascii=False, separators=(",", ":")).encode()
        key = report_key(report["report_id"])
        await self._store.put_bytes(self._bucket, key, data, "application/json")
        summary = summary_of(report)
        created = ts_key(datetime.fromisoformat(report["created_at"]))
        entries = [
            f"index/{scope}/{scope_id}/{kind}/{created}_{report['report_id']}.json"
            for scope, scope_id in scopes_of(report)
            for kind in ("any", report["kind"])
        ]
        await asyncio.gather(*(self._store.put_json(self._bucket, k, summary) for k in entries))
        return key

    async def put_asset(self, key: str, data: bytes, content_type: str) -> None:
        await self._store.put_bytes(self._bucket, key, data, content_type)

    async def get_asset(self, key: str) -> bytes | None:
        return await self._store.get_bytes(self._bucket, key)

    async def list(
        self,
        scope: str,
        scope_id: str,
        kind: str | None,
        *,
        since: datetime | None,
        until: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        prefix = f"index/{scope}/{scope_id}/{kind or 'any'}/"
        start_after = decode_cursor(cursor) if cursor else None
        if since is not None:
            floor = prefix + ts_key(since)
            # "since" is inclusive: start just before the first key at that instant.
            floor_before = floor[:-1] + chr(ord(floor[-1]) - 1)
            if start_after is None or start_after < floor_before:
                start_after = floor_before
        keys = await self._store.list_keys(
            self._bucket, prefix, start_after=start_after, limit=limit + 1
        )
        if until is not None:
            ceiling = prefix + ts_key(until)
            keys = [k for k in keys if k < ceiling]
        more = len(keys) > limit
        keys = keys[:limit]
        summaries = await asyncio.gather(*(self._store.get_json(self._bucket, k) for k in keys))
        next_cursor = encode_cursor(keys[-1]) if more and keys else None
        return [s for s in summaries if s], next_cursor
