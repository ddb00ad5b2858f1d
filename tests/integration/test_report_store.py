"""The report store against the real S3: listing pages stay exact while reports keep arriving,
and every filter narrows a listing without widening what a key may see."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contentmatch_report import store as store_module
from contentmatch_report.routes.reports import listing_for
from contentmatch_report.store import ReportStore, index_keys_of
from contentmatch_shared.auth import ApiKey
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
async def reports(settings: Settings) -> AsyncIterator[ReportStore]:
    objects = ObjectStore(settings)
    await objects.ensure_buckets()
    yield ReportStore(objects)


def _tenant(name: str) -> str:
    """Names of their own per test: the bucket is shared with other tests of the session."""
    return f"{name}-{secrets.token_hex(4)}"


def _report(
    n: int,
    created: datetime,
    *,
    tenant: str,
    platform: str,
    work: str,
    kind: str = "enforcement",
) -> dict[str, Any]:
    return {
        "report_id": f"rep_{secrets.token_hex(8)}_{n:04d}",
        "kind": kind,
        "created_at": created.isoformat(),
        "upload": {"upload_id": f"upl_{n}", "tenant": platform},
        "work": {"work_id": work, "title": f"Work {work}", "tenant": tenant},
        "decision": {"action": "block"},
        "evidence": {"score": 0.9},
        "signature": {"value": "not checked here"},
    }


async def _page_all(
    reports: ReportStore, scope: str, scope_id: str, kind: str | None = None, **kw: Any
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, cursor = await reports.list(
            scope,
            scope_id,
            kind,
            since=kw.get("since"),
            until=kw.get("until"),
            cursor=cursor,
            limit=kw.get("limit", 50),
            keep=kw.get("keep"),
        )
        found.extend(page)
        if cursor is None:
            return found


async def test_pages_have_no_gaps_or_duplicates_while_reports_arrive(
    reports: ReportStore,
) -> None:
    tenant, platform = _tenant("label"), _tenant("tube")
    existing = [
        _report(i, EPOCH + timedelta(seconds=i), tenant=tenant, platform=platform, work="wrk_a")
        for i in range(60)
    ]
    # Written in random order and concurrently: the index, not the write order, decides.
    order = list(existing)
    secrets.SystemRandom().shuffle(order)
    await asyncio.gather(*(reports.put(r) for r in order))

    stop = asyncio.Event()
    arrived: list[str] = []

    async def keep_writing() -> None:
        n = 1000
        while not stop.is_set():
            batch = [
                _report(
                    n + k,
                    datetime.now(UTC) + timedelta(microseconds=k),
                    tenant=tenant,
                    platform=platform,
                    work="wrk_a",
                )
                for k in range(3)
            ]
            await asyncio.gather(*(reports.put(r) for r in batch))  # concurrent inserts
            arrived.extend(r["report_id"] for r in batch)
            n += 3
            await asyncio.sleep(0.01)

    writer = asyncio.create_task(keep_writing())
    seen: list[str] = []
    pages = 0
    cursor = None
    try:
        while True:
            page, cursor = await reports.list(
                "tenant", tenant, None, since=None, until=None, cursor=cursor, limit=7
            )
            seen.extend(s["report_id"] for s in page)
            pages += 1
            await asyncio.sleep(0.02)  # let inserts land between pages
            if cursor is None or pages > 200:
                break
    finally:
        stop.set()
        await writer
    assert len(seen) == len(set(seen)), "a report was listed twice"
    expected = [r["report_id"] for r in existing]
    assert [i for i in seen if i in set(expected)] == expected, "gap or disorder among existing"
    assert len(arrived) > 0
    assert set(seen) - set(expected) <= set(arrived)
    # A second pass, with nothing arriving any more, lists every report exactly once.
    again = [s["report_id"] for s in await _page_all(reports, "tenant", tenant, limit=9)]
    assert again[: len(expected)] == expected and sorted(again) == sorted(expected + arrived)


async def test_filters_since_until_kind_work_platform(reports: ReportStore) -> None:
    label, rival = _tenant("label"), _tenant("rival")
    tube, vidshare = _tenant("tube"), _tenant("vidshare")
    work_a, work_b, work_r = (f"wrk_{secrets.token_hex(4)}" for _ in range(3))
    plan = [
        # (seconds after EPOCH, tenant, platform, work, kind)
        (0, label, tube, work_a, "enforcement"),
        (10, label, vidshare, work_a, "enforcement"),
        (20, label, tube, work_b, "attribution"),
        (30, rival, tube, work_r, "enforcement"),
        (40, label, tube, work_a, "enforcement"),
        (50, label, vidshare, work_b, "attribution"),
    ]
    made = [
        _report(i, EPOCH + timedelta(seconds=s), tenant=t, platform=p, work=w, kind=k)
        for i, (s, t, p, w, k) in enumerate(plan)
    ]
    await asyncio.gather(*(reports.put(r) for r in made))
    ids = [r["report_id"] for r in made]

    async def listed(key: ApiKey, *, work: str | None = None, platform: str | None = None,
                     kind: str | None = None, **kw: Any) -> list[int]:  # fmt: skip
        listing = listing_for(key, work, platform)
        found = await _page_all(
            reports, listing.scope, listing.scope_id, kind, keep=listing.keep, limit=2, **kw
        )
        return [ids.index(s["report_id"]) for s in found if s["report_id"] in ids]

    enforcement = ApiKey(key_id="k", role="enforcement", tenant=label)
    assert await listed(enforcement) == [0, 1, 2, 4, 5]
    assert await listed(enforcement, kind="attribution") == [2, 5]
    assert await listed(enforcement, kind="enforcement") == [0, 1, 4]
    assert await listed(enforcement, work=work_a) == [0, 1, 4]
    assert await listed(enforcement, work=work_r) == []  # rival's work: nothing, not an error
    assert await listed(enforcement, platform=tube) == [0, 2, 4]
    assert await listed(enforcement, work=work_b, platform=vidshare) == [5]
    # since inclusive, until exclusive, both at exact report instants
    window = {"since": EPOCH + timedelta(seconds=10), "until": EPOCH + timedelta(seconds=40)}
    assert await listed(enforcement, **window) == [1, 2]
    assert await listed(enforcement, kind="attribution", **window) == [2]

    platform_key = ApiKey(key_id="k", role="platform", tenant=tube)
    assert await listed(platform_key) == [0, 2, 3, 4]
    assert await listed(platform_key, work=work_a) == [0, 4]
    operator = ApiKey(key_id="k", role="operator", tenant="operator")
    assert await listed(operator, platform=vidshare) == [1, 5]
    assert await listed(operator, work=work_a, platform=vidshare) == [1]
    rival_key = ApiKey(key_id="k", role="rightsholder", tenant=rival)
    assert await listed(rival_key) == [3]


async def test_sparse_filters_return_short_pages_with_a_cursor(
    reports: ReportStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter no index serves scans at most MAX_SCANNED_PER_PAGE keys per request; following
    the cursors still finds every match exactly once."""
    monkeypatch.setattr(store_module, "MAX_SCANNED_PER_PAGE", 5)
    tenant, tube, other = _tenant("label"), _tenant("tube"), _tenant("other")
    made = [
        _report(
            i,
            EPOCH + timedelta(seconds=i),
            tenant=tenant,
            platform=tube if i % 6 == 0 else other,
            work="wrk_x",
        )
        for i in range(24)
    ]
    await asyncio.gather(*(reports.put(r) for r in made))
    pages: list[list[str]] = []
    cursor = None
    while True:
        page, cursor = await reports.list(
            "tenant", tenant, None, since=None, until=None, cursor=cursor, limit=3,
            keep=lambda s: s["platform_tenant"] == tube,
        )  # fmt: skip
        pages.append([s["report_id"] for s in page])
        if cursor is None:
            break
    flat = [i for p in pages for i in p]
    assert flat == [r["report_id"] for r in made if r["upload"]["tenant"] == tube]
    assert any(len(p) < 3 for p in pages[:-1])  # short pages happened, and carried a cursor


async def test_replayed_report_keeps_its_keys(reports: ReportStore) -> None:
    tenant = _tenant("label")
    report = _report(1, EPOCH, tenant=tenant, platform=_tenant("tube"), work="wrk_y")
    await reports.put(report)
    await reports.put(report)
    listed = await _page_all(reports, "tenant", tenant)
    assert [s["report_id"] for s in listed] == [report["report_id"]]
    assert all(k.endswith(f"_{report['report_id']}.json") for k in index_keys_of(report))
    assert await reports.get(report["report_id"]) == report


async def test_a_cursor_from_another_listing_is_refused(reports: ReportStore) -> None:
    with pytest.raises(ValueError):
        await reports.list(
            "tenant",
            "a",
            None,
            since=None,
            until=None,
            cursor=store_module.encode_cursor("index/tenant/b/any/x"),
            limit=5,
        )
