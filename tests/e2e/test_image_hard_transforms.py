"""Hard image copies through HTTP: crops, rotation, mirror, banner, border, canvas."""

from __future__ import annotations

import pytest

from contentmatch_shared.client import ContentMatchClient
from tests.e2e.conftest import Tenants
from tests.fixtures.images import HARD_TRANSFORMS, make_image, to_bytes, transform_bytes

SEEDS = range(601, 601 + len(HARD_TRANSFORMS))


@pytest.fixture(scope="module")
def agency(tenants: Tenants) -> ContentMatchClient:
    """A rightsholder of its own, so other modules' listings are not affected."""
    key = tenants.operator.create_key("rightsholder", "hard-photos")
    return ContentMatchClient(key, tenants.operator.endpoints)


@pytest.fixture(scope="module")
def registered(agency: ContentMatchClient) -> dict[int, str]:
    work_ids = {
        seed: agency.register_work(
            to_bytes(make_image(seed, size=(800, 600)), "JPEG", quality=92),
            f"hard{seed}.jpg",
            {"title": f"Hard {seed}", "kind": "work", "policy": "block"},
        )
        for seed in SEEDS
    }
    for work_id in work_ids.values():
        assert agency.wait_work(work_id)["status"] == "indexed"
    return work_ids


def test_each_hard_transform_is_matched_to_its_work(
    tenants: Tenants, registered: dict[int, str]
) -> None:
    submitted = []
    for seed, name in zip(SEEDS, HARD_TRANSFORMS, strict=True):
        data, ext = transform_bytes(make_image(seed, size=(800, 600)), name, seed=seed)
        submitted.append((seed, name, tenants.tube.submit_upload(data, f"{name}.{ext}")))
    failures = []
    for seed, name, upload_id in submitted:
        upload = tenants.tube.wait_upload(upload_id)
        best = upload["matches"][0] if upload["matches"] else None
        if best is None or best["work_id"] != registered[seed]:
            failures.append((name, upload["status"], upload["matches"]))
            continue
        assert best["signal"], best
        assert best["distance"] is not None
        if name in ("center_crop_60", "crop_10", "canvas_paste") and best["signal"] == "orb":
            region = best["evidence"].get("region")
            assert region is not None, best["evidence"]
            assert 0 <= region["x"] <= 1 and 0 < region["w"] <= 1.01
    assert not failures, failures


def test_unrelated_images_stay_unmatched_beside_hard_works(
    tenants: Tenants, registered: dict[int, str]
) -> None:
    ids = [
        tenants.tube.submit_upload(to_bytes(make_image(seed, size=(800, 600)), "PNG"), "o.png")
        for seed in range(2000, 2012)
    ]
    matched = [u for u in (tenants.tube.wait_upload(i) for i in ids) if u["status"] != "no_match"]
    assert not matched, [(u["upload_id"], u["matches"]) for u in matched]
