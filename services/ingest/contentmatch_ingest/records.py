"""Work and upload records in the state bucket, one object per fact.

Each event that changes a status writes its own object (``submitted``, ``indexed``, ``matched``,
``failed``, one per report), so concurrent writers never read-modify-write one another's data, and
a replayed event simply overwrites the same object. A status is derived from which objects exist.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

from contentmatch_shared.storage import ObjectStore

_CHANGES = "upload-changes"
# ``<13-digit epoch ms>-<upload id>``: lexicographic order is time order.
_CURSOR = re.compile(r"\d{13}-upl_[0-9a-f]{32}")
_POSITION = re.compile(r"\d{13}(-upl_[0-9a-f]{32})?")  # a change's cursor, or a time


def change_cursor(at: datetime, upload_id: str) -> str:
    return f"{int(at.timestamp() * 1000):013d}-{upload_id}"


def since_cursor(at: datetime) -> str:
    """The position just before every change recorded at or after ``at``."""
    return f"{max(int(at.timestamp() * 1000), 0):013d}"


def is_cursor(value: str) -> bool:
    return bool(_POSITION.fullmatch(value))


def change_key(tenant: str, cursor: str) -> str:
    return f"{_CHANGES}/{tenant}/{cursor}"


class RecordStore:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._bucket = store.settings.bucket_state

    # -- writes ------------------------------------------------------------------------------
    async def put(self, subject: str, subject_id: str, fact: str, value: dict[str, Any]) -> None:
        await self._store.put_json(self._bucket, f"{subject}/{subject_id}/{fact}.json", value)

    async def put_if_absent(
        self, subject: str, subject_id: str, fact: str, value: dict[str, Any]
    ) -> None:
        key = f"{subject}/{subject_id}/{fact}.json"
        if not await self._store.exists(self._bucket, key):
            await self._store.put_json(self._bucket, key, value)

    async def note_change(self, tenant: str, upload_id: str, at: datetime) -> None:
        """Index an upload's change under its tenant, in time order: ``GET /v1/uploads?since``."""
        await self._store.put_bytes(
            self._bucket, change_key(tenant, change_cursor(at, upload_id)), b""
        )

    async def changes(self, tenant: str, *, after: str, limit: int) -> list[tuple[str, str]]:
        """(cursor, upload id) of the tenant's changes past ``after`` (a cursor), oldest first."""
        prefix = f"{_CHANGES}/{tenant}/"
        keys = await self._store.list_keys(
            self._bucket, prefix, start_after=prefix + after if after else None, limit=limit
        )
        out = []
        for key in keys:
            cursor = key.removeprefix(prefix)
            if _CURSOR.fullmatch(cursor):
                out.append((cursor, cursor.partition("-")[2]))
        return out

    # -- reads -------------------------------------------------------------------------------
    async def facts(
        self, subject: str, subject_id: str, names: tuple[str, ...]
    ) -> dict[str, dict[str, Any] | None]:
        values = await asyncio.gather(
            *(self._store.get_json(self._bucket, f"{subject}/{subject_id}/{n}.json") for n in names)
        )
        return dict(zip(names, values, strict=True))

    async def report_refs(self, upload_id: str) -> list[dict[str, Any]]:
        prefix = f"uploads/{upload_id}/reports/"
        # Not a leftover of a write cut short by a crash ("<key>-<uuid>" on S3Proxy's filesystem).
        keys = [k for k in await self._store.list_keys(self._bucket, prefix) if k.endswith(".json")]
        refs = await asyncio.gather(*(self._store.get_json(self._bucket, k) for k in keys))
        return [r for r in refs if r]

    # -- idempotency keys --------------------------------------------------------------------
    async def idempotent_response(self, scope: str, digest: str) -> dict[str, Any] | None:
        return await self._store.get_json(self._bucket, f"idempotency/{scope}/{digest}.json")

    async def remember_response(self, scope: str, digest: str, value: dict[str, Any]) -> None:
        await self._store.put_json(self._bucket, f"idempotency/{scope}/{digest}.json", value)
