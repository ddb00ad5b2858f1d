"""Readers of declared metadata (registered in ``READERS``): XMP, PNG text chunks, EXIF and audio
tags, each ``(data, media_type) -> list[ProvenanceEvidence]``. What they say is ``declared``
(the file says so, nobody vouches); a malformed identifier in a tag is ``invalid``."""

from __future__ import annotations

import io

from contentmatch_fingerprint.signals.provenance import audio_tags, exif, png_chunks, xmp
from contentmatch_fingerprint.signals.provenance.audio_tags import AudioTagFacts
from contentmatch_fingerprint.signals.provenance.generator_text import (
    GeneratorClaim,
    generator_claims,
)
from contentmatch_fingerprint.signals.provenance.generators import ai_generator
from contentmatch_shared.provenance import ProvenanceEvidence, TdmReservation

# PLUS "Data Mining" values -> the uses they reserve (the bare DMI-PROHIBITED reserves all).
_DATA_MINING_USES = {
    "DMI-PROHIBITED": ["data_mining", "ai_training", "ai_generative_training"],
    "DMI-PROHIBITED-AIMLTRAINING": ["ai_training", "ai_generative_training"],
    "DMI-PROHIBITED-GENAIMLTRAINING": ["ai_generative_training"],
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": ["data_mining", "ai_training"],
    "DMI-PROHIBITED-SEEOTHERCONSTRAINT": ["see_other_constraints"],
}


def _first(values: tuple[str, ...]) -> str | None:
    return values[0] if values else None


def _xmp_evidence(facts: xmp.XmpFacts) -> list[ProvenanceEvidence]:
    out: list[ProvenanceEvidence] = []
    tool_generator = next(filter(None, map(ai_generator, facts.creator_tools)), None)
    ai_system = _first(facts.ai_systems) or tool_generator
    details: dict[str, object] = {}
    if facts.ai_system_versions:
        details["ai_system_version"] = facts.ai_system_versions[0]
    if facts.creator_tools:
        details["creator_tool"] = facts.creator_tools[0]
    if facts.ai_prompts:
        details["prompt"] = facts.ai_prompts[0]
    for value in facts.digital_source_types:
        name = xmp.digital_source_type_name(value)
        label = xmp.DIGITAL_SOURCE_TYPES.get(name, "not an IPTC digital source type")
        is_ai = name in xmp.AI_DIGITAL_SOURCE_TYPES
        summary = f"XMP (IPTC): digital source type {name}: {label}"
        if is_ai and ai_system:
            summary += f"; AI system used: {ai_system}"
        out.append(
            ProvenanceEvidence(
                source="xmp",
                kind="ai_generated" if is_ai else "metadata",
                strength="declared",
                summary=summary,
                ai_system=ai_system if is_ai else None,
                digital_source_type=value,
                details=details,
            )
        )
    # An AI system named without a source type still claims generation; next to a source type
    # (say digitalCapture, with an AI upscaler named) the source type decides.
    if not facts.digital_source_types and (facts.ai_systems or tool_generator):
        where = "IPTC AI system used" if facts.ai_systems else "XMP creator tool"
        out.append(
            ProvenanceEvidence(
                source="xmp",
                kind="ai_generated",
                strength="declared",
                summary=f"XMP ({where}): made with {ai_system}",
                ai_system=ai_system,
                details=details,
            )
        )
    for value in facts.data_mining:
        name = xmp.data_mining_name(value)
        reserved = xmp.data_mining_reserved(value)
        uses = _DATA_MINING_USES.get(name.upper(), []) if reserved else []
        note = f" ({facts.other_constraints[0]})" if facts.other_constraints else ""
        out.append(
            ProvenanceEvidence(
                source="xmp",
                kind="tdm_reservation",
                strength="declared",
                summary=f"XMP (PLUS data mining): {name}{note}",
                tdm_reservation=TdmReservation(
                    reserved=reserved, source="xmp", value=name, uses=uses
                ),
            )
        )
    for text in facts.provenance[:2]:
        out.append(
            ProvenanceEvidence(
                source="xmp", kind="metadata", strength="declared", summary=f"Provenance: {text}"
            )
        )
    return out


def read_xmp(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
    if png_chunks.is_png(data):
        packets = png_chunks.walk(data).xmp_packets
    else:
        packets = xmp.jpeg_extended_packets(data)
    found, problems = xmp.read_xmp(data, packets)
    out = [piece for facts in found for piece in _xmp_evidence(facts)]
    for problem in problems[:2]:
        out.append(
            ProvenanceEvidence(
                source="xmp", kind="metadata", strength="invalid", summary=f"XMP: {problem}"
            )
        )
    return out


def _claim_evidence(claim: GeneratorClaim, source: str, where: str) -> ProvenanceEvidence:
    models = f" (model {', '.join(claim.models[:2])})" if claim.models else ""
    return ProvenanceEvidence(
        source=source,  # type: ignore[arg-type]
        kind="ai_generated",
        strength="declared",
        summary=f"{where} written by {claim.tool}: {claim.ai_system}{models}",
        ai_system=claim.ai_system,
        details={"tool": claim.tool, "field": claim.keyword, "models": list(claim.models)}
        | claim.details,
    )


def read_png_text(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
    walked = png_chunks.walk(data)
    texts = {c.keyword: c.text for c in walked.texts if c.keyword != png_chunks.XMP_KEYWORD}
    after = {c.keyword for c in walked.texts if c.after_image_data}
    out = []
    for claim in generator_claims(texts):
        piece = _claim_evidence(claim, "png_text", f"PNG text '{claim.keyword}'")
        piece.details["after_image_data"] = claim.keyword in after
        out.append(piece)
    return out


def read_exif(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
    if png_chunks.is_png(data):
        block = png_chunks.walk(data).exif
        facts = exif.read_exif_block(block) if block else exif.ExifFacts()
    else:
        facts = exif.read_exif(data)
    texts = {}
    if facts.software:
        texts["Software"] = facts.software
    if facts.user_comment:
        texts["parameters"] = facts.user_comment
    out = []
    for claim in generator_claims(texts):
        where = "EXIF Software" if claim.keyword == "Software" else "EXIF UserComment"
        out.append(_claim_evidence(claim, "exif", where))
    return out


def _tag_evidence(facts: AudioTagFacts) -> list[ProvenanceEvidence]:
    out: list[ProvenanceEvidence] = []
    for scheme, values in (("isrc", facts.isrc), ("iswc", facts.iswc)):
        for value in values[:2]:
            out.append(
                ProvenanceEvidence(
                    source="audio_tags",
                    kind="identifier",
                    strength="declared",
                    summary=f"Audio tag {scheme.upper()} {value}",
                    identifiers={scheme: value},
                )
            )
    for bad in facts.invalid_identifiers[:4]:
        out.append(
            ProvenanceEvidence(
                source="audio_tags",
                kind="identifier",
                strength="invalid",
                summary=f"Audio tag {bad}: not a valid identifier (format or check digit)",
            )
        )
    for field, values in (("software", facts.software), ("comment", facts.comments)):
        for value in values:
            if (name := ai_generator(value)) is not None:
                out.append(
                    ProvenanceEvidence(
                        source="audio_tags",
                        kind="ai_generated",
                        strength="declared",
                        summary=f"Audio tag {field}: {value[:200]}",
                        ai_system=name,
                        details={"field": field},
                    )
                )
                break
    return out


def read_audio_tags(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
    return _tag_evidence(audio_tags.read_audio_tags(io.BytesIO(data)))
