"""The HTML page and the listing rules, without a running service."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contentmatch_report.builder import EvidenceAttachments, build_reports, report_id_for
from contentmatch_report.html import check_report, render_report
from contentmatch_report.routes.reports import listing_for, may_read
from contentmatch_report.signing import ReportSigner
from contentmatch_shared.auth import ApiKey
from contentmatch_shared.events import Match, ObjectRef, UploadMatched, UploadMetadata
from contentmatch_shared.http import ApiError

PICTURE = b"\xff\xd8\xff fake jpeg bytes"


@pytest.fixture
def signer(tmp_path: Path) -> ReportSigner:
    return ReportSigner.from_config("", str(tmp_path / "signing.key"))


def _report(signer: ReportSigner, title: str = "Harbour <at> dusk") -> dict:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    match = Match(
        work_id="wrk_1", kind="work", title=title, tenant="label", score=0.8, policy="block",
        media_type="image", signal="phash", distance=4, evidence={"phash": 4},
    )  # fmt: skip
    result = UploadMatched(
        upload_id="upl_1", tenant="tube", media_type="image",
        object=ObjectRef(bucket="b", key="k"), metadata=UploadMetadata(),
        matches=[match], submitted_at=now, matched_at=now,
    )  # fmt: skip
    report_id = report_id_for("upl_1", "wrk_1")
    picture = {
        "name": "work.jpg", "role": "work_thumbnail", "key": f"reports/{report_id}/work.jpg",
        "content_type": "image/jpeg", "size": len(PICTURE),
        "sha256": hashlib.sha256(PICTURE).hexdigest(),
    }  # fmt: skip
    attachments = {"wrk_1": EvidenceAttachments(references=[picture])}
    return signer.sign(build_reports(result, {report_id: now}, attachments)[0])


def test_page_shows_decision_pictures_inline_and_a_valid_signature(signer: ReportSigner) -> None:
    report = _report(signer)
    page = render_report(report, signer, {"work.jpg": PICTURE})
    assert "Authentic" in page and "NOT AUTHENTIC" not in page
    assert "data:image/jpeg;base64," in page
    assert "Take the upload down" in page
    assert "Harbour &lt;at&gt; dusk" in page and "<at>" not in page  # titles are escaped
    assert "http://" not in page and "https://" not in page  # self-contained


def test_page_flags_a_tampered_report_and_a_swapped_picture(signer: ReportSigner) -> None:
    report = _report(signer)
    public = signer.public_key_info()["public_key"]
    assert check_report(report, public, {"work.jpg": PICTURE}).all_ok
    swapped = check_report(report, public, {"work.jpg": b"x"})
    assert swapped.ok and not swapped.all_ok
    report["decision"]["action"] = "track"
    page = render_report(report, signer, {"work.jpg": PICTURE})
    assert "NOT AUTHENTIC" in page and "altered" in page


def _key(role: str, tenant: str) -> ApiKey:
    return ApiKey(key_id="k", role=role, tenant=tenant)  # type: ignore[arg-type]


SUMMARY = {"work_id": "wrk_1", "work_tenant": "label", "platform_tenant": "tube"}


def test_listing_scopes_per_role() -> None:
    assert listing_for(_key("operator", "operator"), None, None).scope == "all"
    assert listing_for(_key("operator", "operator"), None, "tube").scope_id == "tube"
    enforcement = listing_for(_key("enforcement", "label"), None, None)
    assert (enforcement.scope, enforcement.scope_id, enforcement.keep) == ("tenant", "label", None)
    platform = listing_for(_key("platform", "tube"), None, None)
    assert (platform.scope, platform.scope_id) == ("platform", "tube")
    with pytest.raises(ApiError) as err:
        listing_for(_key("platform", "tube"), None, "vidshare")
    assert err.value.status == 404


def test_work_and_platform_filters_never_widen_a_key() -> None:
    other = listing_for(_key("rightsholder", "rival"), "wrk_1", None)
    assert other.scope == "work" and other.keep is not None and not other.keep(SUMMARY)
    own = listing_for(_key("rightsholder", "label"), "wrk_1", "tube")
    assert own.keep is not None and own.keep(SUMMARY)
    assert not own.keep({**SUMMARY, "platform_tenant": "vidshare"})
    platform = listing_for(_key("platform", "tube"), "wrk_2", None)
    assert platform.scope_id == "tube" and platform.keep is not None
    assert not platform.keep(SUMMARY)


def test_reading_one_report_follows_the_same_rules(signer: ReportSigner) -> None:
    report = _report(signer)
    assert may_read(_key("operator", "operator"), report)
    assert may_read(_key("enforcement", "label"), report)
    assert may_read(_key("rightsholder", "label"), report)
    assert may_read(_key("platform", "tube"), report)
    assert not may_read(_key("enforcement", "rival"), report)
    assert not may_read(_key("rightsholder", "tube"), report)  # a tenant name, another role
    assert not may_read(_key("platform", "label"), report)
    assert not may_read(_key("platform", "vidshare"), report)
