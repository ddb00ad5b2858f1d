"""C2PA provenance end to end, through HTTP only: the stack trusts the test chain's root as the
operator's own anchor (``CM_C2PA_EXTRA_TRUST_ANCHORS_FILE``, set by the stack fixture)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Tenants
from tests.fixtures import c2pa_media as cm
from tests.fixtures.images import make_image, to_bytes


@pytest.fixture(scope="module")
def ai_signed(c2pa_chain: cm.TestChain) -> bytes:
    data = to_bytes(make_image(8701), "JPEG", quality=90)
    return cm.sign(data, "image/jpeg", cm.created_manifest(), c2pa_chain)


def test_ai_signed_image_without_a_match_gets_an_attribution_report(
    tenants: Tenants, ai_signed: bytes
) -> None:
    upload_id = tenants.tube.submit_upload(ai_signed, "generated.jpg")
    upload = tenants.tube.wait_upload(upload_id)
    assert upload["status"] == "no_match" and upload["matches"] == []
    provenance = upload["provenance"]
    assert provenance["ai_generated"] is True
    assert provenance["ai_system"] == "ImageMaker Diffusion 1.0"
    [ref] = upload["reports"]
    assert ref["kind"] == "attribution" and upload["report_id"] == ref["report_id"]

    report = tenants.tube.report(ref["report_id"])
    assert report["work"] is None and report["matches"] == []
    assert report["decision"]["action"] == "label_ai_generated"
    assert "ImageMaker Diffusion 1.0" in report["decision"]["reason"]
    [ground] = report["attribution"]["grounds"]
    assert ground["strength"] == "verified" and ground["signer"]["trust"] == "trusted"
    assert ground["signer"]["common_name"] == c2pa_chain_cn()
    page = tenants.tube.report_raw(ref["report_id"], "html")
    assert page.status_code == 200
    assert "by its own provenance: ImageMaker Diffusion 1.0" in page.text
    assert 'class="strength verified"' in page.text
    # Listed for the platform; no rightsholder's listing holds it.
    listed = tenants.tube.reports(kind="attribution")["reports"]
    assert ref["report_id"] in {r["report_id"] for r in listed}
    assert ref["report_id"] not in {r["report_id"] for r in tenants.label.reports()["reports"]}


def c2pa_chain_cn() -> str:
    return "ImageMaker Signer"


def test_a_tampered_ai_image_is_invalid_evidence_not_ai(
    tenants: Tenants, c2pa_chain: cm.TestChain
) -> None:
    data = to_bytes(make_image(8702), "JPEG", quality=90)
    tampered = cm.flip_pixel_byte(cm.sign(data, "image/jpeg", cm.created_manifest(), c2pa_chain))
    upload = tenants.tube.wait_upload(tenants.tube.submit_upload(tampered, "tampered.jpg"))
    assert upload["status"] == "no_match" and upload["report_id"] is None
    provenance = upload["provenance"]
    assert provenance["ai_generated"] is False
    [ai] = [p for p in provenance["evidence"] if p["kind"] == "ai_generated"]
    assert ai["strength"] == "invalid"
    assert "assertion.dataHash.mismatch" in ai["details"]["failure_codes"]


def test_a_match_and_c2pa_in_one_report_with_the_works_tdm_reservation(
    tenants: Tenants, c2pa_chain: cm.TestChain
) -> None:
    reserved = cm.created_manifest(
        "StudioCam", "StudioCam", cm.CAPTURE, training_mining={"c2pa.ai_training": "notAllowed"}
    )
    original = cm.sign(to_bytes(make_image(8703), "JPEG", quality=95), "image/jpeg", reserved,
                       c2pa_chain)  # fmt: skip
    work_id = tenants.label.register_work(
        original, "photo.jpg", {"title": "Harbour 8703", "kind": "work", "policy": "block"}
    )
    work = tenants.label.wait_work(work_id)
    assert work["status"] == "indexed"
    assert work["provenance"]["tdm_reservation"]["reserved"] is True
    assert work["provenance"]["ai_generated"] is False

    edited = cm.sign(
        to_bytes(make_image(8703).resize((480, 360)), "JPEG", quality=80),
        "image/jpeg",
        cm.created_manifest("RemixApp", "RemixApp Fill", cm.COMPOSITE),
        c2pa_chain,
    )
    upload = tenants.tube.wait_upload(tenants.tube.submit_upload(edited, "remix.jpg"))
    assert upload["status"] == "matched" and upload["matches"][0]["work_id"] == work_id
    assert upload["matches"][0]["tdm_reservation"]["reserved"] is True
    kinds = {r["kind"]: r["report_id"] for r in upload["reports"]}
    assert set(kinds) == {"enforcement", "attribution"}

    report = tenants.tube.report(kinds["enforcement"])
    assert report["evidence"]["score"] > 0  # the match ...
    [ai] = [p for p in report["provenance"]["upload"]["evidence"] if p["kind"] == "ai_generated"]
    assert ai["strength"] == "verified" and ai["ai_system"] == "RemixApp Fill 1.0"  # ... and C2PA
    assert (
        "reserves text-and-data mining" in report["provenance"]["work_tdm_reservation"]["statement"]
    )
    assert {"report_id": kinds["attribution"], "kind": "attribution"} in report["related_reports"]
