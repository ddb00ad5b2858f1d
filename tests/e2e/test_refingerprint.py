"""``contentmatch refingerprint-works``: a tenant's registered works are fingerprinted again by
the running pipeline (the recorded submission republished), failed ones and other tenants'
are left alone, and the work still matches afterwards."""

from __future__ import annotations

import asyncio
import time

from contentmatch_shared.client import ContentMatchClient
from contentmatch_shared.refingerprint import refingerprint_works
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore
from tests.e2e.conftest import Tenants
from tests.fixtures.images import make_image, to_bytes, transform_bytes

META = {"title": "Refingerprinted photo", "kind": "work", "policy": "track"}


def _fingerprinted_at(store: ObjectStore, work_id: str) -> str:
    fact = asyncio.run(store.get_json(store.settings.bucket_state, f"works/{work_id}/indexed.json"))
    return str(fact["fingerprinted_at"])


def test_refingerprint_works_of_one_tenant(settings: Settings, tenants: Tenants) -> None:
    archive = ContentMatchClient(
        tenants.operator.create_key("rightsholder", "archive"), tenants.label.endpoints
    )
    try:
        work_id = archive.register_work(to_bytes(make_image(521), "PNG"), "a.png", META)
        broken = archive.register_work(b"\xff\xd8\xff\xe0" + b"\x00" * 300, "b.jpg", META)
        assert archive.wait_work(work_id)["status"] == "indexed"
        assert archive.wait_work(broken)["status"] == "failed"
        store = ObjectStore(settings)
        before = _fingerprinted_at(store, work_id)

        listed = asyncio.run(refingerprint_works(settings, tenant="archive", dry_run=True))
        assert listed == [work_id]  # not the failed one, not another tenant's
        assert asyncio.run(refingerprint_works(settings, tenant="archive")) == listed

        deadline = time.monotonic() + 90
        while _fingerprinted_at(store, work_id) == before:
            assert time.monotonic() < deadline, "the work was not fingerprinted again"
            time.sleep(0.5)
        assert archive.work(work_id)["status"] == "indexed"
        data, ext = transform_bytes(make_image(521), "jpeg_q20", seed=521)
        upload = tenants.tube.wait_upload(tenants.tube.submit_upload(data, f"c.{ext}"))
        assert upload["status"] == "matched"
        assert [m["work_id"] for m in upload["matches"]][:1] == [work_id]
    finally:
        archive.close()
