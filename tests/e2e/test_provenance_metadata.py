"""Declared provenance through the whole stack: an upload whose PNG carries Stable Diffusion's
text chunks (after the image data) gets an attribution report naming the generator; a work whose
XMP reserves text-and-data mining carries the reservation into the report of an upload matching
it, with the ISCC of both sides; a watermark alone or a plain photo gets no attribution report;
an audio work shows the ISRC of its tags and its ISCC Audio-Code.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from contentmatch_shared.client import ContentMatchClient, Endpoints
from tests.e2e.conftest import Tenants
from tests.e2e.report_parties import ReportParties, make_parties
from tests.fixtures import audio
from tests.fixtures.images import make_image, to_bytes
from tests.fixtures.provenance_media import (
    A1111_PARAMETERS,
    encode,
    png_with_chunks,
    text_chunk,
    textured,
    watermarked,
    xmp_packet,
)

SEEDS = range(8880, 8890)


@pytest.fixture(scope="module")
def parties(tenants: Tenants, endpoints: Endpoints) -> Iterator[ReportParties]:
    made = make_parties(tenants.operator, endpoints, "provmeta")
    yield made
    made.close()


def _with_reports(client: ContentMatchClient, upload_id: str, timeout_s: float = 60) -> dict:
    """The upload once final and its reports (if any are coming) are listed."""
    upload = client.wait_upload(upload_id)
    deadline = time.monotonic() + timeout_s
    while (
        upload["status"] == "no_match"
        and (upload.get("provenance") or {}).get("ai_generated")
        and not upload["reports"]
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
        upload = client.upload(upload_id)
    return upload


def _sources(provenance: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(p["source"], p["kind"], p["strength"]) for p in provenance["evidence"]]


def test_stable_diffusion_png_gets_an_attribution_report(parties: ReportParties) -> None:
    data = png_with_chunks(
        after=[text_chunk("parameters", A1111_PARAMETERS)], img=make_image(SEEDS[0])
    )
    upload = _with_reports(parties.tube, parties.tube.submit_upload(data, "sd.png"))
    assert upload["status"] == "no_match", upload
    provenance = upload["provenance"]
    assert provenance["ai_generated"] and provenance["ai_system"] == "Stable Diffusion"
    assert ("png_text", "ai_generated", "declared") in _sources(provenance)
    assert provenance["identifiers"]["iscc"].startswith("ISCC:EE")
    (ref,) = upload["reports"]
    report = parties.tube.report(ref["report_id"])
    assert report["kind"] == "attribution" and report["decision"]["action"] == "label_ai_generated"
    attribution = report["attribution"]
    assert attribution["named_system"] == "Stable Diffusion"
    (ground,) = attribution["grounds"]
    assert (ground["source"], ground["strength"]) == ("png_text", "declared")
    assert ground["details"]["tool"] == "AUTOMATIC1111"
    assert ground["details"]["after_image_data"] is True


def test_tdm_reservation_and_iscc_reach_the_enforcement_report(parties: ReportParties) -> None:
    seed = SEEDS[1]
    packet = xmp_packet(data_mining="DMI-PROHIBITED-AIMLTRAINING", provenance="Studio shoot")
    work_id = parties.label.register_work(
        _png_xmp(seed, packet),
        f"w{seed}.png",
        {"title": "Reserved harbour", "policy": "block"},
    )
    work = parties.label.wait_work(work_id)
    assert work["status"] == "indexed", work
    reservation = work["provenance"]["tdm_reservation"]
    assert reservation["reserved"] and reservation["value"] == "DMI-PROHIBITED-AIMLTRAINING"
    work_iscc = work["provenance"]["identifiers"]["iscc"]
    # The platform's copy went through a JPEG re-encode: metadata gone, content the same.
    copy = to_bytes(make_image(seed), "JPEG", quality=85)
    upload = _with_reports(parties.tube, parties.tube.submit_upload(copy, "copy.jpg"))
    assert upload["status"] == "matched" and upload["matches"][0]["work_id"] == work_id
    assert upload["matches"][0]["tdm_reservation"]["reserved"]
    report = parties.label.report(upload["report_id"])
    section = report["provenance"]
    assert section["work_tdm_reservation"]["reserved"]
    assert "reserves text-and-data mining" in section["work_tdm_reservation"]["statement"]
    assert section["work"]["identifiers"]["iscc"] == work_iscc
    upload_iscc = section["upload"]["identifiers"]["iscc"]
    assert upload_iscc.startswith("ISCC:EE") and not section["upload"]["ai_generated"]


def _png_xmp(seed: int, packet: bytes) -> bytes:
    chunk = text_chunk("XML:com.adobe.xmp", packet.decode(), "iTXt-z")
    return png_with_chunks(before=[chunk], img=make_image(seed))


def test_watermark_alone_and_plain_photo_get_no_attribution(parties: ReportParties) -> None:
    marked = Image.fromarray(watermarked(textured(SEEDS[2]), "StableDiffusionV1"))
    upload = _with_reports(parties.tube, parties.tube.submit_upload(encode(marked, "PNG"), "m.png"))
    assert upload["status"] == "no_match" and upload["reports"] == []
    provenance = upload["provenance"]
    assert not provenance["ai_generated"]
    assert ("watermark", "ai_generated", "supporting") in _sources(provenance)
    plain = to_bytes(make_image(SEEDS[3]), "JPEG", quality=90)
    upload = _with_reports(parties.tube, parties.tube.submit_upload(plain, "plain.jpg"))
    assert upload["status"] == "no_match" and upload["reports"] == []
    assert [p["source"] for p in upload["provenance"]["evidence"]] == ["iscc"]


def test_audio_work_carries_its_tags_and_audio_iscc(parties: ReportParties, tmp_path: Path) -> None:
    """A track whose MP3 tags carry its ISRC and ISWC: the work shows them with its ISCC
    Audio-Code; a malformed ISWC in the tags is shown as invalid, not as an identifier."""
    wav = tmp_path / "track.wav"
    audio.write_wav(wav, audio.make_track(SEEDS[4], 20.0, audio.DEFAULT_SR), audio.DEFAULT_SR)
    tagged = tmp_path / "track.mp3"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame",
         "-b:a", "128k", "-metadata", "ISRC=GB-PMT-26-08884", "-metadata", "ISWC=T-034.524.680-2",
         str(tagged)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    work_id = parties.label.register_work(
        tagged.read_bytes(), "track.mp3", {"title": "Tagged track", "policy": "track"}
    )
    work = parties.label.wait_work(work_id)
    assert work["status"] == "indexed", work
    provenance = work["provenance"]
    assert provenance["identifiers"]["isrc"] == "GBPMT2608884"
    assert provenance["identifiers"]["iscc"].startswith("ISCC:EI")
    assert "iswc" not in provenance["identifiers"]
    assert ("audio_tags", "identifier", "invalid") in _sources(provenance)
    assert not provenance["ai_generated"]
