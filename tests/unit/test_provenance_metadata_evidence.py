"""The metadata readers as registered: bytes in, evidence out, and the bundle's decisions
(AI grounds, TDM reservation, identifiers) from them."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
from PIL import Image

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_fingerprint.signals.provenance import (
    read_evidence,
    read_provenance,
    with_fingerprint_evidence,
)
from contentmatch_shared.fingerprints import AudioFingerprint
from contentmatch_shared.provenance import Provenance
from tests.fixtures.provenance_media import (
    A1111_PARAMETERS,
    audio_with_tags,
    comfy_texts,
    encode,
    jpeg_with_exif,
    jpeg_with_extended_xmp,
    jpeg_with_xmp,
    picture,
    png_with_chunks,
    text_chunk,
    textured,
    watermarked,
    xmp_packet,
)
from tests.unit.test_provenance_xmp import BILLION_LAUGHS


def test_iptc_ai_image_is_declared_grounds() -> None:
    packet = xmp_packet(
        digital_source_type="trainedAlgorithmicMedia",
        ai_system="Firefly Image 3",
        data_mining="DMI-PROHIBITED-AIMLTRAINING",
    )
    provenance = read_provenance(jpeg_with_xmp(packet), "image")
    assert provenance.ai_generated and provenance.ai_system == "Firefly Image 3"
    (ai,) = provenance.ai_evidence
    assert (ai.source, ai.strength) == ("xmp", "declared")
    assert ai.digital_source_type.endswith("/trainedAlgorithmicMedia")
    assert provenance.tdm_reservation is not None and provenance.tdm_reservation.reserved
    assert provenance.tdm_reservation.value == "DMI-PROHIBITED-AIMLTRAINING"
    assert provenance.tdm_reservation.uses == ["ai_training", "ai_generative_training"]


def test_capture_and_other_source_types_are_no_grounds() -> None:
    for dst in ("digitalCapture", "algorithmicMedia", "compositeSynthetic", "humanEdits"):
        packet = xmp_packet(digital_source_type=dst, data_mining="DMI-ALLOWED")
        provenance = read_provenance(jpeg_with_xmp(packet), "image")
        assert not provenance.ai_generated, dst
        assert [p.kind for p in provenance.evidence] == ["metadata", "tdm_reservation"]
        assert provenance.tdm_reservation is not None
        assert not provenance.tdm_reservation.reserved
    composite = xmp_packet(digital_source_type="compositeWithTrainedAlgorithmicMedia")
    assert read_provenance(jpeg_with_xmp(composite), "image").ai_generated
    # An AI system named alone claims generation; beside a capture source type it does not.
    named = read_provenance(jpeg_with_xmp(xmp_packet(ai_system="Imagen 3")), "image")
    assert named.ai_generated and named.ai_system == "Imagen 3"
    tool = read_provenance(jpeg_with_xmp(xmp_packet(creator_tool="Midjourney")), "image")
    assert tool.ai_system == "Midjourney"
    upscaled = xmp_packet(digital_source_type="digitalCapture", ai_system="Topaz Photo AI")
    assert not read_provenance(jpeg_with_xmp(upscaled), "image").ai_generated


def test_front_end_records_in_png_and_exif() -> None:
    a1111 = png_with_chunks(after=[text_chunk("parameters", A1111_PARAMETERS, "iTXt-z")])
    provenance = read_provenance(a1111, "image")
    (piece,) = provenance.evidence
    assert (piece.source, piece.kind, piece.strength) == ("png_text", "ai_generated", "declared")
    assert piece.ai_system == "Stable Diffusion" and piece.details["tool"] == "AUTOMATIC1111"
    assert piece.details["after_image_data"] is True
    comfy = read_provenance(png_with_chunks(before=comfy_texts()), "image")
    assert {p.details["tool"] for p in comfy.evidence} == {"ComfyUI"}
    assert comfy.ai_generated
    exif = read_provenance(jpeg_with_exif(software="Midjourney v6"), "image")
    assert exif.ai_system == "Midjourney" and exif.evidence[0].source == "exif"


def test_plain_pictures_have_no_provenance() -> None:
    for data in (encode(picture(), "JPEG"), encode(picture(), "PNG"), encode(picture(), "WEBP")):
        assert read_provenance(data, "image") == Provenance()
    assert read_provenance(jpeg_with_exif(software="Adobe Photoshop 26.0"), "image").empty


def test_hostile_xmp_is_invalid_evidence_not_a_failure() -> None:
    good = xmp_packet(digital_source_type="trainedAlgorithmicMedia")
    evidence, failures = read_evidence(jpeg_with_xmp(BILLION_LAUGHS + good), "image")
    assert failures == []
    assert [(p.kind, p.strength) for p in evidence] == [
        ("ai_generated", "declared"),
        ("metadata", "invalid"),
    ]


def test_audio_tags_give_identifiers(tmp_path: Path) -> None:
    path = audio_with_tags(
        tmp_path / "a.mp3",
        {"ISRC": "USRC17607839", "ISWC": "T-034.524.680-2", "comment": "made with Suno v4"},
    )
    provenance = read_provenance(path.read_bytes(), "audio")
    assert provenance.identifiers == {"isrc": "USRC17607839"}
    assert [(p.kind, p.strength) for p in provenance.evidence] == [
        ("identifier", "declared"),
        ("identifier", "invalid"),
        ("ai_generated", "declared"),
    ]
    assert provenance.ai_system == "Suno"


def test_fingerprint_readers_iscc_and_watermark() -> None:
    marked = encode(Image.fromarray(watermarked(textured(8870), "StableDiffusionV1")), "PNG")
    provenance = with_fingerprint_evidence(Provenance(), fingerprint_image(marked))
    mark, code = provenance.evidence
    assert (mark.source, mark.kind, mark.strength) == ("watermark", "ai_generated", "supporting")
    assert mark.ai_system == "Stable Diffusion" and mark.details["channel_order"] == "BGR"
    assert not provenance.ai_generated  # a watermark alone is never grounds
    assert code.source == "iscc" and provenance.identifiers["iscc"].startswith("ISCC:EE")
    items = np.random.default_rng(8871).integers(0, 2**32, 400, dtype=np.uint64)
    payload = base64.b64encode(items.astype("<u4").tobytes()).decode()
    audio = AudioFingerprint(duration_s=50.0, chromaprint=payload, item_rate=8.08)
    audio_provenance = with_fingerprint_evidence(Provenance(), audio)
    assert audio_provenance.identifiers["iscc"].startswith("ISCC:EI")


def test_ai_claim_in_jpeg_extended_xmp() -> None:
    main = xmp_packet(creator_tool="Adobe Photoshop 26.0")
    extended = xmp_packet(digital_source_type="trainedAlgorithmicMedia", ai_system="Firefly")
    provenance = read_provenance(jpeg_with_extended_xmp(main, extended, part=120), "image")
    assert provenance.ai_generated and provenance.ai_system == "Firefly"
    assert [p.strength for p in provenance.evidence] == ["declared"]
