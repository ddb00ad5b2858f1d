"""Who may read which report (list, get, pictures), and proving a report with the verify CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contentmatch_shared.client import ApiFailure, ContentMatchClient, Endpoints
from tests.e2e.conftest import Tenants
from tests.e2e.report_parties import ReportParties, make_parties, register_image, upload_copy

LABEL_SEED, RIVAL_SEED = 7101, 7102


@pytest.fixture(scope="module")
def parties(tenants: Tenants, endpoints: Endpoints) -> Iterator[ReportParties]:
    made = make_parties(tenants.operator, endpoints, "acc")
    yield made
    made.close()


@pytest.fixture(scope="module")
def issued(parties: ReportParties) -> dict[str, Any]:
    """label's work copied on tube; rival's work copied on vidshare: one report each."""
    label_work = register_image(
        parties.label,
        LABEL_SEED,
        {"title": "Access photo", "policy": "block", "identifiers": {"internal": "AC-1"}},
    )
    rival_work = register_image(
        parties.rival, RIVAL_SEED, {"title": "Rival photo", "policy": "monetize"}
    )
    on_tube = upload_copy(parties.tube, LABEL_SEED, "jpeg_q75", external_id="acc-1")
    on_vidshare = upload_copy(parties.vidshare, RIVAL_SEED, "jpeg_q75")
    assert on_tube["matches"][0]["work_id"] == label_work
    assert on_vidshare["matches"][0]["work_id"] == rival_work
    return {
        "label_work": label_work,
        "rival_work": rival_work,
        "label_report": on_tube["report_id"],
        "rival_report": on_vidshare["report_id"],
    }


def _listed(client: ContentMatchClient, **params: Any) -> set[str]:
    return {r["report_id"] for r in client.reports(limit=500, **params)["reports"]}


def _picture_names(client: ContentMatchClient, report_id: str) -> list[str]:
    return [p["name"] for p in client.report(report_id)["evidence"]["pictures"]]


def _asset(client: ContentMatchClient, report_id: str, name: str) -> httpx.Response:
    url = f"{client.endpoints.report}/v1/reports/{report_id}/assets/{name}"
    return client._http.get(url)


def test_readers_of_the_rightsholders_report(parties: ReportParties, issued: dict) -> None:
    report_id = issued["label_report"]
    allowed = {
        "operator": parties.operator,
        "rightsholder": parties.label,
        "enforcement of the same tenant": parties.label_enforcement,
        "platform of the upload": parties.tube,
    }
    refused = {
        "rightsholder of another tenant": parties.rival,
        "enforcement of another tenant": parties.rival_enforcement,
        "another platform": parties.vidshare,
        "an AI developer": parties.ai_lab,
    }
    names = _picture_names(parties.operator, report_id)
    assert sorted(names) == ["upload.jpg", "work.jpg"]
    pictures = {p["name"]: p for p in parties.operator.report(report_id)["evidence"]["pictures"]}
    for who, client in allowed.items():
        assert client.report(report_id)["report_id"] == report_id, who
        assert report_id in _listed(client), who
        html = client.report_raw(report_id, "html")
        assert html.status_code == 200 and "Authentic" in html.text, who
        for name in names:
            got = _asset(client, report_id, name)
            assert got.status_code == 200, (who, name, got.text)
            assert got.headers["content-type"] == "image/jpeg"
            assert hashlib.sha256(got.content).hexdigest() == pictures[name]["sha256"]
    for who, client in refused.items():
        with pytest.raises(ApiFailure) as err:
            client.report(report_id)
        assert (err.value.status, err.value.code) == (404, "not_found"), who
        assert client.report_raw(report_id, "html").status_code == 404, who
        assert report_id not in _listed(client), who
        for name in [*names, "nope.jpg"]:
            assert _asset(client, report_id, name).status_code == 404, (who, name)


def test_listings_are_scoped_per_role(parties: ReportParties, issued: dict) -> None:
    label_report, rival_report = issued["label_report"], issued["rival_report"]
    assert _listed(parties.label_enforcement) == {label_report}
    assert _listed(parties.label) == {label_report}
    assert _listed(parties.rival_enforcement) == {rival_report}
    assert _listed(parties.tube) == {label_report}
    assert _listed(parties.vidshare) == {rival_report}
    assert _listed(parties.ai_lab) == set()
    assert {label_report, rival_report} <= _listed(parties.operator)
    # Filters narrow, never widen: another tenant's work or platform lists nothing.
    assert _listed(parties.label_enforcement, work=issued["rival_work"]) == set()
    assert _listed(parties.label_enforcement, work=issued["label_work"]) == {label_report}
    assert _listed(parties.label_enforcement, platform=parties.names["vidshare"]) == set()
    assert _listed(parties.tube, work=issued["rival_work"]) == set()
    with pytest.raises(ApiFailure) as err:
        parties.tube.reports(platform=parties.names["vidshare"])
    assert err.value.status == 404
    assert _listed(parties.operator, platform=parties.names["vidshare"]) == {rival_report}
    assert _listed(parties.label_enforcement, kind="attribution") == set()


def test_no_key_no_report(parties: ReportParties, issued: dict) -> None:
    base = parties.operator.endpoints.report
    report_id = issued["label_report"]
    for path in (
        "/v1/reports",
        f"/v1/reports/{report_id}",
        f"/v1/reports/{report_id}?format=html",
        f"/v1/reports/{report_id}/assets/work.jpg",
    ):
        for headers in ({}, {"Authorization": "Bearer cm_unknown"}):
            response = httpx.get(base + path, headers=headers)
            assert response.status_code == 401, path
            assert response.json()["error"]["code"] == "unauthorized"
    # The public key is public: anyone may verify.
    key = httpx.get(f"{base}/v1/reports/public-key").json()
    assert key["algorithm"] == "Ed25519" and len(key["public_key"]) == 44


def _verify(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contentmatch_shared.cli", "report", "verify", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_verify_cli_accepts_the_served_bytes_and_catches_one_changed_byte(
    parties: ReportParties, issued: dict, tmp_path: Path
) -> None:
    base = parties.operator.endpoints.report
    served = parties.label_enforcement.report_raw(issued["label_report"]).content
    original = tmp_path / "report.json"
    original.write_bytes(served)

    ok = _verify(original, "--url", base)
    assert ok.returncode == 0, ok.stderr
    assert "authentic" in ok.stdout
    public_key = httpx.get(f"{base}/v1/reports/public-key").json()["public_key"]
    assert _verify(original, "--public-key", public_key).returncode == 0

    # One byte: the policy the enforcement team would act on.
    at = served.index(b'"action":"block"') + len(b'"action":"')
    tampered = bytearray(served)
    tampered[at] = ord("B")
    changed = tmp_path / "tampered.json"
    changed.write_bytes(bytes(tampered))
    assert json.loads(changed.read_bytes())["decision"]["action"] == "Block"
    bad = _verify(changed, "--url", base)
    assert bad.returncode != 0
    assert "NOT AUTHENTIC" in bad.stderr and "altered" in bad.stderr

    # One byte of a picture's sha256 (the signature covers the pictures too).
    at = served.index(b'"sha256":"', served.index(b'"pictures"')) + len(b'"sha256":"')
    tampered = bytearray(served)
    tampered[at] = ord("0") if tampered[at] != ord("0") else ord("1")
    changed.write_bytes(bytes(tampered))
    assert _verify(changed, "--public-key", public_key).returncode != 0

    unreadable = tmp_path / "broken.json"
    unreadable.write_bytes(served[:-1])
    broken = _verify(unreadable, "--public-key", public_key)
    assert broken.returncode != 0 and "cannot read" in broken.stderr
