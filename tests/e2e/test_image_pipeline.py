"""Images end to end, through HTTP only: register, upload copies and strangers, read reports."""

from __future__ import annotations

import pytest

from contentmatch_shared.client import ApiFailure
from tests.e2e.conftest import Tenants
from tests.fixtures.images import make_image, to_bytes, transform_bytes

N_WORKS = 20
N_AI_OUTPUTS = 4
N_UNRELATED = 24
COPY_TRANSFORMS = ("resize_third", "jpeg_q20", "webp_small", "resize_half")


@pytest.fixture(scope="module")
def registered(tenants: Tenants) -> dict[int, str]:
    """seed -> work_id for 20 works (label) and 4 AI outputs (ai-lab), all indexed."""
    work_ids: dict[int, str] = {}
    for seed in range(1, N_WORKS + N_AI_OUTPUTS + 1):
        data = to_bytes(make_image(seed), "PNG")
        if seed <= N_WORKS:
            metadata = {
                "title": f"Photo {seed}",
                "kind": "work",
                "policy": ("block", "monetize", "track")[seed % 3],
                "identifiers": {"internal": f"PH-{seed:04d}"},
            }
            work_ids[seed] = tenants.label.register_work(data, f"photo{seed}.png", metadata)
        else:
            metadata = {
                "title": f"Generated {seed}",
                "kind": "ai_output",
                "policy": "track",
                "ai_system": {"provider": "PixelForge", "model": "pf-diffusion", "version": "3.1"},
            }
            work_ids[seed] = tenants.ai_lab.register_work(data, f"gen{seed}.png", metadata)
    for seed, work_id in work_ids.items():
        owner = tenants.label if seed <= N_WORKS else tenants.ai_lab
        work = owner.wait_work(work_id)
        assert work["status"] == "indexed", work
        assert work["media_type"] == "image"
    return work_ids


@pytest.fixture(scope="module")
def results(tenants: Tenants, registered: dict[int, str]) -> dict[str, list[dict]]:
    copies = []
    for i, seed in enumerate(registered):
        name = COPY_TRANSFORMS[i % len(COPY_TRANSFORMS)]
        data, ext = transform_bytes(make_image(seed), name, seed=seed)
        upload_id = tenants.tube.submit_upload(
            data, f"copy{seed}.{ext}", {"external_id": f"vid-{seed}", "uploader": "someone"}
        )
        copies.append((seed, name, upload_id))
    strangers = []
    for seed in range(1000, 1000 + N_UNRELATED):
        data = to_bytes(make_image(seed), "JPEG", quality=85)
        strangers.append((seed, tenants.tube.submit_upload(data, f"other{seed}.jpg")))
    return {
        "copies": [
            {"seed": s, "transform": n, "upload": tenants.tube.wait_upload(u)} for s, n, u in copies
        ],
        "strangers": [{"seed": s, "upload": tenants.tube.wait_upload(u)} for s, u in strangers],
    }


def test_every_copy_is_matched_to_its_work(results: dict, registered: dict[int, str]) -> None:
    misses = []
    for item in results["copies"]:
        upload = item["upload"]
        expected = registered[item["seed"]]
        if upload["status"] != "matched" or upload["matches"][0]["work_id"] != expected:
            misses.append((item["seed"], item["transform"], upload["status"], upload["matches"]))
        else:
            best = upload["matches"][0]
            assert 0 < best["score"] <= 1
            assert best["signal"]
            assert best["segments"] is None  # images have no segments
    assert not misses, misses


def test_no_unrelated_image_is_matched(results: dict) -> None:
    wrong = [(i["seed"], i["upload"]["matches"]) for i in results["strangers"]]
    wrong = [
        w
        for w, item in zip(wrong, results["strangers"], strict=True)
        if item["upload"]["status"] != "no_match"
    ]
    assert not wrong, wrong
    for item in results["strangers"]:
        assert item["upload"]["report_id"] is None


def test_every_matched_upload_has_exactly_one_report(tenants: Tenants, results: dict) -> None:
    for item in results["copies"]:
        upload = item["upload"]
        assert len(upload["matches"]) == 1, upload["matches"]
        assert len(upload["reports"]) == 1
        assert upload["report_id"] == upload["reports"][0]["report_id"]
    listed = tenants.tube.reports(limit=500)["reports"]
    by_upload: dict[str, int] = {}
    for summary in listed:
        by_upload[summary["upload_id"]] = by_upload.get(summary["upload_id"], 0) + 1
    for item in results["copies"]:
        assert by_upload.get(item["upload"]["upload_id"]) == 1


def test_report_kind_follows_the_work_kind(tenants: Tenants, results: dict) -> None:
    for item in results["copies"]:
        report = tenants.operator.report(item["upload"]["report_id"])
        if item["seed"] <= N_WORKS:
            assert report["kind"] == "enforcement"
            assert report["work"]["tenant"] == "label"
            assert report["decision"]["action"] == report["work"]["policy"]
        else:
            assert report["kind"] == "attribution"
            assert report["attribution"]["ai_system"]["provider"] == "PixelForge"
            assert report["attribution"]["registered_by"] == "ai-lab"
            assert report["decision"]["action"] == "label_ai_generated"
        assert report["upload"]["upload_id"] == item["upload"]["upload_id"]
        assert report["upload"]["external_id"] == f"vid-{item['seed']}"
        assert report["matches"][0]["work_id"] == item["upload"]["matches"][0]["work_id"]
        assert report["signature"]["algorithm"] == "Ed25519"


def test_reports_are_readable_by_the_right_tenants_only(tenants: Tenants, results: dict) -> None:
    enforcement = next(i for i in results["copies"] if i["seed"] <= N_WORKS)
    report_id = enforcement["upload"]["report_id"]
    for allowed in (tenants.tube, tenants.label, tenants.label_enforcement, tenants.operator):
        assert allowed.report(report_id)["report_id"] == report_id
    for refused in (tenants.other_platform, tenants.rival, tenants.rival_enforcement):
        with pytest.raises(ApiFailure) as err:
            refused.report(report_id)
        assert err.value.status in (403, 404)
        assert err.value.code in ("forbidden", "not_found")
    # Listings are scoped the same way.
    assert tenants.rival_enforcement.reports()["reports"] == []
    assert tenants.other_platform.reports()["reports"] == []
    # (other modules share these tenants: count this module's uploads only)
    ours = {i["upload"]["upload_id"]: i["seed"] for i in results["copies"]}
    mine = tenants.label_enforcement.reports(kind="enforcement", limit=500)["reports"]
    assert {r["work_tenant"] for r in mine} == {"label"}
    mine_here = [r["upload_id"] for r in mine if r["upload_id"] in ours]
    assert sorted(mine_here) == sorted(u for u, seed in ours.items() if seed <= N_WORKS)
    ai = tenants.ai_lab.reports(kind="attribution", limit=500)["reports"]
    ai_here = [r["upload_id"] for r in ai if r["upload_id"] in ours]
    assert sorted(ai_here) == sorted(u for u, seed in ours.items() if seed > N_WORKS)


def test_uploads_are_visible_to_their_platform_only(tenants: Tenants, results: dict) -> None:
    upload_id = results["copies"][0]["upload"]["upload_id"]
    with pytest.raises(ApiFailure) as err:
        tenants.other_platform.upload(upload_id)
    assert err.value.status == 404
    with pytest.raises(ApiFailure) as err:
        tenants.label.upload(upload_id)
    assert err.value.status == 403
