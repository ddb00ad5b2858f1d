"""What a platform reads of its upload: the matches and errors, never a storage location."""

from __future__ import annotations

from contentmatch_ingest.routes.uploads import UploadPublic, public_message
from contentmatch_shared.events import Match, MatchPublic, ObjectRef


def test_upload_errors_name_no_storage_location() -> None:
    message = public_message("no object s3://cm-media/uploads/tube/upl_1")
    assert message == "no object (storage location withheld)"
    assert public_message("neither an image nor audio") == "neither an image nor audio"


def test_a_public_match_has_no_work_object() -> None:
    match = Match(
        work_id="wrk_1", kind="work", title="T", tenant="label", score=0.9, policy="block",
        media_type="image", signal="phash", omitted=["1 of 2 identifiers (record size)"],
        work_object=ObjectRef(bucket="cm-media", key="works/wrk_1"),
    )  # fmt: skip
    public = MatchPublic.model_validate(match.model_dump(mode="json"))
    view = UploadPublic(
        upload_id="upl_1", status="matched", media_type="image", matches=[public],
        report_id=None, reports=[], tenant="tube", submitted_at="2026-12-07T00:00:00+00:00",
    ).model_dump_json()  # fmt: skip
    assert "cm-media" not in view and "works/" not in view and "work_object" not in view
    assert "omitted" not in view and '"title":"T"' in view
