"""Everyday image edits through HTTP: a meme with caption bands, a "filter" (colour grade and
vignette) and watermark text are found; near-alike siblings and unregistered memes are not."""

from __future__ import annotations

import pytest

from contentmatch_shared.client import ContentMatchClient
from tests.e2e.conftest import Tenants
from tests.fixtures.flag_images import BLUE, GREEN, ORANGE, RED, WHITE, make_ensign, make_tricolour
from tests.fixtures.images import make_image, to_bytes, transform_bytes

SIZE = (800, 600)
# Seed -> the edit its copy goes through; the bands and the grade are what the dense check
# alone refuses (the masked judge explains them).
EDITS = {
    731: "meme_2bands_18",
    732: "grade_faded_vignette_strong",
    733: "watermark_text",
}


@pytest.fixture(scope="module")
def studio(tenants: Tenants) -> ContentMatchClient:
    """A rightsholder of its own, so other modules' listings are not affected."""
    key = tenants.operator.create_key("rightsholder", "everyday-edits")
    return ContentMatchClient(key, tenants.operator.endpoints)


@pytest.fixture(scope="module")
def registered(studio: ContentMatchClient) -> dict[str, str]:
    works = {str(seed): make_image(seed, size=SIZE) for seed in EDITS}
    works["ensign_dot"] = make_ensign("dot")
    works["ireland"] = make_tricolour((GREEN, WHITE, ORANGE))
    ids = {
        name: studio.register_work(
            to_bytes(img, "JPEG", quality=92),
            f"{name}.jpg",
            {"title": f"Everyday {name}", "kind": "work", "policy": "block"},
        )
        for name, img in works.items()
    }
    for work_id in ids.values():
        assert studio.wait_work(work_id)["status"] == "indexed"
    return ids


def test_meme_filter_and_watermark_copies_are_found(
    tenants: Tenants, registered: dict[str, str]
) -> None:
    submitted = []
    for seed, name in EDITS.items():
        data, ext = transform_bytes(make_image(seed, size=SIZE), name, seed=seed)
        submitted.append((seed, name, tenants.tube.submit_upload(data, f"{name}.{ext}")))
    failures = []
    for seed, name, upload_id in submitted:
        upload = tenants.tube.wait_upload(upload_id)
        best = upload["matches"][0] if upload["matches"] else None
        if best is None or best["work_id"] != registered[str(seed)]:
            failures.append((name, upload["status"], upload["matches"]))
            continue
        if name != "watermark_text":
            # Bands and grades get past the dense check only through the masked judge.
            assert best["evidence"].get("verified") == "masked", best["evidence"]
            assert best["evidence"].get("masked_agree") is not None
    assert not failures, failures


def test_near_alike_siblings_and_unregistered_memes_are_not_matched(
    tenants: Tenants, registered: dict[str, str]
) -> None:
    unregistered = make_image(7399, size=SIZE)
    queries = [
        ("ensign_plain", to_bytes(make_ensign("plain"), "PNG")),
        ("france", to_bytes(make_tricolour((BLUE, WHITE, RED)), "PNG")),
        ("meme_unregistered", transform_bytes(unregistered, "meme_2bands_18", seed=1)[0]),
        ("grade_unregistered", transform_bytes(unregistered, "grade_warm", seed=1)[0]),
    ]
    ids = [(name, tenants.tube.submit_upload(data, f"{name}.png")) for name, data in queries]
    matched = [
        (name, u["matches"])
        for name, u in ((name, tenants.tube.wait_upload(i)) for name, i in ids)
        if u["status"] != "no_match"
    ]
    assert not matched, matched
