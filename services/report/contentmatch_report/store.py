"""Reports in the reports bucket, their pictures, and the listing indexes beside them.

Layout (bucket ``CM_BUCKET_REPORTS``):
- ``reports/<report_id>.json``: the signed report, the exact bytes the API serves;
- ``reports/<report_id>/<name>``: its pictures (``upload.jpg``, ``work.jpg``, ``timeline.png``),
  named with their sha256 in the report's ``evidence.pictures``;
- ``index/<scope>/<scope_id>/<kind|any>/<created_at>_<report_id>.json``: a summary per listing
  scope (``all/_``, ``tenant/<work tenant>``, ``platform/<platform tenant>``, ``work/<work_id>``).
- ``work-thumbnails/<work_id>-<sha256 of the original>.png``: a registered work's thumbnail
  before any region is outlined, made once (``evidence_pictures``); never served as such.

No key is a "directory" of another (S3Proxy on a filesystem cannot hold ``a/b`` and ``a/b/c``):
``reports/<id>.json`` and ``reports/<id>/...`` differ in their last segment.

Index keys sort by creation time, so a cursor (the last key examined) pages forward without
duplicates or gaps among reports that existed when the listing started; reports created later sort
after every key already returned and show up on later pages.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from contentmatch_report.builder import summary_of
from contentmatch_shared.storage import ObjectStore

_TS_FORMAT = "%Y%m%dT%H%M%S%fZ"
# Index keys read per page at most when a filter is not an index of its own: a page may come back
# short (with a cursor) rather than make one request scan a whole tenant's history.
MAX_SCANNED_PER_PAGE = 2000
_ASSET_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}\.(jpg|png)$")

SummaryFilter = Callable[[dict[str, Any]], bool]


def ts_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TS_FORMAT)


def report_key(report_id: str) -> str:
    return f"reports/{report_id}.json"


def asset_key(report_id: str, name: str) -> str:
    if not _ASSET_NAME.match(name):
        raise ValueError(f"not an asset name: {name!r}")
    return f"reports/{report_id}/{name}"


def scopes_of(report: dict[str, Any]) -> list[tuple[str, str]]:
    work = report.get("work")  # None in an attribution report from provenance alone
    if not work:
        return [("all", "_"), ("platform", report["upload"]["tenant"])]
    return [
        ("all", "_"),
        ("tenant", work["tenant"]),
        ("platform", report["upload"]["tenant"]),
        ("work", work["work_id"]),
    ]


def index_keys_of(report: dict[str, Any]) -> list[str]:
    created = ts_key(datetime.fromisoformat(report["created_at"]))
    return [
        f"index/{scope}/{scope_id}/{kind}/{created}_{report['report_id']}.json"
        for scope, scope_id in scopes_of(report)
        for kind in ("any", report["kind"])
    ]


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    padded = cursor + "=" * (-len(cursor) % 4)
    return base64.urlsafe_b64decode(padded.encode()).decode()


def serialise(report: dict[str, Any]) -> bytes:
    """The stored (and served) bytes of a report. Compact; the signature is over the canonical
    form (sorted keys), so these bytes verify however a client re-serialises them."""
    return json.dumps(report, ensure_ascii=False, separators=(",", ":")).encode()


class ReportStore:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._bucket = store.settings.bucket_reports

    @property
    def bucket(self) -> str:
        return self._bucket

    async def get_bytes(self, report_id: str) -> bytes | None:
        return await self._store.get_bytes(self._bucket, report_key(report_id))

    async def get(self, report_id: str) -> dict[str, Any] | None:
        data = await self.get_bytes(report_id)
        return None if data is None else json.loads(data)

    async def put(self, report: dict[str, Any]) -> str:
        """Store the report, then its index entries (a crash in between is healed by the replay:
        same id, same ``created_at``, so the same keys)."""
        key = report_key(report["report_id"])
        await self._store.put_bytes(self._bucket, key, serialise(report), "application/json")
        summary = summary_of(report)
        await asyncio.gather(
            *(self._store.put_json(self._bucket, k, summary) for k in index_keys_of(report))
        )
        return key

    async def put_asset(self, report_id: str, name: str, data: bytes, content_type: str) -> str:
        key = asset_key(report_id, name)
        await self._store.put_bytes(self._bucket, key, data, content_type)
        return key

    async def get_asset(self, report_id: str, name: str) -> bytes | None:
        return await self._store.get_bytes(self._bucket, asset_key(report_id, name))

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
        keep: SummaryFilter | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page, oldest first. ``since`` is inclusive, ``until`` exclusive; ``keep`` filters
        summaries that no index serves directly (the page may then be short, with a cursor)."""
        prefix = f"index/{scope}/{scope_id}/{kind or 'any'}/"
        start_after = decode_cursor(cursor) if cursor else None
        if start_after is not None and not start_after.startswith(prefix):
            raise ValueError("the cursor belongs to another listing")
        if since is not None:
            # Inclusive: start just before the first key at that instant ("Z" -> "Y").
            floor = prefix + ts_key(since)[:-1] + "Y"
            if start_after is None or start_after < floor:
                start_after = floor
        ceiling = prefix + ts_key(until) if until is not None else None

        found: list[dict[str, Any]] = []
        scanned = 0
        while True:
            batch = min(MAX_SCANNED_PER_PAGE - scanned, max(limit - len(found), 1) + 1)
            keys = await self._store.list_keys(
                self._bucket, prefix, start_after=start_after, limit=batch
            )
            if ceiling is not None:
                keys = [k for k in keys if k < ceiling]
            ended = len(keys) < batch
            # A write cut short by a crash can list as another key (S3Proxy's filesystem backend
            # leaves "<key>-<uuid>" behind): only index keys are index entries.
            keys = [k for k in keys if k.endswith(".json")]
            summaries = await asyncio.gather(*(self._store.get_json(self._bucket, k) for k in keys))
            for i, (key, summary) in enumerate(zip(keys, summaries, strict=True)):
                scanned += 1
                start_after = key
                if summary and (keep is None or keep(summary)):
                    found.append(summary)
                    if len(found) == limit:
                        has_more = i < len(keys) - 1 or await self._more_after(prefix, key, ceiling)
                        return found, encode_cursor(key) if has_more else None
            if ended:
                return found, None
            if scanned >= MAX_SCANNED_PER_PAGE:
                return found, encode_cursor(start_after) if start_after else None

    async def _more_after(self, prefix: str, key: str, ceiling: str | None) -> bool:
        after = await self._store.list_keys(self._bucket, prefix, start_after=key, limit=1)
        return bool(after) and (ceiling is None or after[0] < ceiling)
