"""Tenant privacy: what each reader of an upload and its reports learns about other tenants.

Two rightsholders registered the same picture; a platform uploads a copy, so the upload matches
both works and gets one report per work. The platform sees both matches (the contract) but no
storage location; each rightsholder's report, page, related reports and pictures name nothing of
the other rightsholder's work.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from contentmatch_shared.client import Endpoints
from tests.e2e.conftest import Tenants
from tests.e2e.report_parties import ReportParties, make_parties, register_image, upload_copy

SEED = 7301
RIVAL_TITLE = "Lighthouse the rival keeps to itself"


@pytest.fixture(scope="module")
def parties(tenants: Tenants, endpoints: Endpoints) -> Iterator[ReportParties]:
    made = make_parties(tenants.operator, endpoints, "priv")
    yield made
    made.close()


@pytest.fixture(scope="module")
def shared_upload(parties: ReportParties) -> dict[str, Any]:
    label_work = register_image(parties.label, SEED, {"title": "Harbour", "policy": "block"})
    rival_work = register_image(parties.rival, SEED, {"title": RIVAL_TITLE, "policy": "track"})
    upload = upload_copy(parties.tube, SEED, "jpeg_q75", external_id="priv-1")
    assert {m["work_id"] for m in upload["matches"]} == {label_work, rival_work}, upload
    by_work = {r["work_id"]: r["report_id"] for r in upload["reports"]}
    return {
        "upload": upload,
        "label_work": label_work,
        "rival_work": rival_work,
        "label_report": by_work[label_work],
        "rival_report": by_work[rival_work],
    }


def _raw_upload(parties: ReportParties, upload_id: str) -> str:
    client = parties.tube
    response = client._http.get(f"{client.endpoints.ingest}/v1/uploads/{upload_id}")
    assert response.status_code == 200
    return response.text


def test_the_platform_sees_the_matched_works_but_no_storage_location(
    parties: ReportParties, shared_upload: dict[str, Any]
) -> None:
    upload = shared_upload["upload"]
    text = _raw_upload(parties, upload["upload_id"])
    for match in upload["matches"]:
        assert {"work_id", "kind", "title", "tenant", "score", "policy"} <= match.keys()
        assert "work_object" not in match
    for storage_word in ('"bucket"', '"key"', "cm-media", "cm-state", "works/", "uploads/"):
        assert storage_word not in text, storage_word
    assert RIVAL_TITLE in text  # the platform may see every work its upload matched


def _everything_read_by(client: Any, report_id: str) -> list[bytes]:
    """The report's JSON, its page, its related reports and every picture, as this key gets them."""
    base = f"{client.endpoints.report}/v1/reports/{report_id}"
    got = [client._http.get(base), client._http.get(base, params={"format": "html"})]
    got.append(client._http.get(f"{base}/related"))
    names = [p["name"] for p in got[0].json()["evidence"]["pictures"]]
    assert names, "the report has pictures to check"
    got += [client._http.get(f"{base}/assets/{name}") for name in names]
    assert all(r.status_code == 200 for r in got), [(r.url, r.status_code) for r in got]
    return [r.content for r in got]


def test_a_rightsholder_learns_nothing_of_the_other_rightsholders_work(
    parties: ReportParties, shared_upload: dict[str, Any]
) -> None:
    rival_work = shared_upload["rival_work"]
    secrets = [rival_work, RIVAL_TITLE, parties.names["rival"]]
    for reader in (parties.label, parties.label_enforcement):
        for body in _everything_read_by(reader, shared_upload["label_report"]):
            for secret in secrets:
                assert secret.encode() not in body, secret
        related = reader._http.get(
            f"{reader.endpoints.report}/v1/reports/{shared_upload['label_report']}/related"
        ).json()
        assert related == {"related_reports": []}
    # ... and the other way round.
    for body in _everything_read_by(parties.rival, shared_upload["rival_report"]):
        for secret in (shared_upload["label_work"], "Harbour", parties.names["label"]):
            assert secret.encode() not in body, secret


def test_the_platform_and_operators_resolve_every_related_report(
    parties: ReportParties, shared_upload: dict[str, Any]
) -> None:
    label_report, rival_report = shared_upload["label_report"], shared_upload["rival_report"]
    for reader in (parties.tube, parties.operator):
        base = f"{reader.endpoints.report}/v1/reports/{label_report}"
        related = reader._http.get(f"{base}/related").json()["related_reports"]
        assert [(r["report_id"], r["work_title"]) for r in related] == [(rival_report, RIVAL_TITLE)]
        page = reader._http.get(base, params={"format": "html"}).text
        assert RIVAL_TITLE in page and rival_report in page
    # The signed report itself names the related report by id and kind only.
    assert parties.tube.report(label_report)["related_reports"] == [
        {"report_id": rival_report, "kind": "enforcement"}
    ]
