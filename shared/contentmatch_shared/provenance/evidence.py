"""The provenance evidence model: what a reader found in a file, and how much it is worth.

A *reader* (fingerprint service) turns a file's bytes into a list of :class:`ProvenanceEvidence`;
the readers' lists become one :class:`Provenance` (:meth:`Provenance.from_evidence`), which
travels inside events, so changes are additive only.

Strength of a piece of evidence:

- ``verified``: a valid C2PA manifest whose signer chains to the official or interim trust list;
- ``declared``: a valid manifest from an untrusted signer, or unsigned metadata (XMP, PNG text,
  EXIF, audio tags): someone says so, nobody vouches;
- ``supporting``: a signal that corroborates but never decides alone (an invisible watermark);
- ``invalid``: present but broken (a tampered or unreadable manifest): reported, never grounds.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

EvidenceSource = Literal["c2pa", "xmp", "png_text", "exif", "watermark", "audio_tags", "iscc"]
EvidenceStrength = Literal["verified", "declared", "supporting", "invalid"]
EvidenceKind = Literal[
    "ai_generated",  # the file says it was made, or composited, by a trained AI model
    "content_credentials",  # a signed history without an AI claim (capture, edits)
    "tdm_reservation",  # a rights holder reserves text-and-data mining / AI training
    "identifier",  # an ISCC, ISRC or ISWC found in or computed from the file
    "metadata",  # any other declared fact (software, creator, provenance note)
]
TrustLevel = Literal["trusted", "interim", "untrusted", "invalid"]

IPTC_DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# The IPTC digital source types that say a trained model made the content, or part of it.
AI_DIGITAL_SOURCE_TYPES = frozenset(
    {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"}
)

MAX_EVIDENCE = 32  # per file: a manifest store with hundreds of ingredients keeps the first ones
MAX_DETAILS_BYTES = 4 * 1024  # per piece, as JSON: events stay far below Kafka's record limit
MAX_TEXT = 500


def digital_source_type_name(value: str | None) -> str | None:
    """``trainedAlgorithmicMedia`` from the IPTC URI (or a bare name, as some writers put it)."""
    if not value:
        return None
    value = value.strip()
    for prefix in (IPTC_DIGITAL_SOURCE_TYPE, "https://cv.iptc.org/newscodes/digitalsourcetype/"):
        if value.startswith(prefix):
            return value[len(prefix) :] or None
    return value.rsplit("/", 1)[-1] or None


def is_ai_digital_source_type(value: str | None) -> bool:
    return digital_source_type_name(value) in AI_DIGITAL_SOURCE_TYPES


def _clip(value: str | None, limit: int = MAX_TEXT) -> str | None:
    return value if value is None or len(value) <= limit else value[: limit - 1] + "…"


class SignerInfo(BaseModel):
    """Who signed a manifest, and whether a trust list vouches for them."""

    common_name: str | None = None
    organization: str | None = None
    issuer: str | None = None
    algorithm: str | None = None
    trust: TrustLevel = "untrusted"
    signed_at: str | None = None  # the trusted time stamp, when there is one
    timestamp_authority: str | None = None


class TdmReservation(BaseModel):
    """A rights holder's text-and-data-mining / AI-training reservation, as written."""

    reserved: bool
    source: EvidenceSource
    value: str = Field(max_length=MAX_TEXT)  # e.g. "notAllowed", "DMI-PROHIBITED"
    uses: list[str] = Field(default_factory=list)  # e.g. ["c2pa.ai_training"]: which uses


class ProvenanceEvidence(BaseModel):
    """One piece of evidence from one reader. ``summary`` is the line a reviewer reads."""

    source: EvidenceSource
    kind: EvidenceKind
    strength: EvidenceStrength
    summary: str
    ai_system: str | None = None  # the generator the evidence names, as named
    digital_source_type: str | None = None  # the IPTC URI (or name) as found
    signer: SignerInfo | None = None
    identifiers: dict[str, str] = Field(default_factory=dict)  # iscc / isrc / iswc -> value
    tdm_reservation: TdmReservation | None = None
    details: dict[str, Any] = Field(default_factory=dict)  # reader-specific, bounded JSON

    @field_validator("summary", "ai_system", "digital_source_type")
    @classmethod
    def _bounded_text(cls, value: str | None) -> str | None:
        return _clip(value)

    @field_validator("details")
    @classmethod
    def _bounded_details(cls, value: dict[str, Any]) -> dict[str, Any]:
        raw = json.dumps(value, default=str, ensure_ascii=False)
        if len(raw.encode()) <= MAX_DETAILS_BYTES:
            return value
        kept: dict[str, Any] = {}
        used = 2
        for key, item in value.items():
            size = len(json.dumps({key: item}, default=str, ensure_ascii=False).encode())
            if used + size > MAX_DETAILS_BYTES - 64:
                kept["truncated"] = True
                break
            kept[key] = item
            used += size
        return kept

    @property
    def claims_ai(self) -> bool:
        return self.kind == "ai_generated"

    @property
    def is_grounds(self) -> bool:
        """Evidence that may decide an AI label on its own (never a watermark or a broken
        manifest)."""
        return self.claims_ai and self.strength in ("verified", "declared")


class ReaderFailure(BaseModel):
    """A reader that could not finish (its limit, a crash): the rest of the provenance stands."""

    reader: str
    code: str
    message: str = Field(max_length=MAX_TEXT)


_STRENGTH_ORDER = {"verified": 0, "declared": 1, "supporting": 2, "invalid": 3}


class Provenance(BaseModel):
    """Everything the readers found in one file."""

    evidence: list[ProvenanceEvidence] = Field(default_factory=list)
    identifiers: dict[str, str] = Field(default_factory=dict)  # the first value per scheme
    tdm_reservation: TdmReservation | None = None
    failures: list[ReaderFailure] = Field(default_factory=list)

    @classmethod
    def from_evidence(
        cls,
        evidence: list[ProvenanceEvidence],
        failures: list[ReaderFailure] | None = None,
    ) -> Provenance:
        """The bundle of the readers' evidence (in reader order): identifiers merged, the
        strongest reserving TDM statement (an invalid manifest's never counts)."""
        evidence = evidence[:MAX_EVIDENCE]
        identifiers: dict[str, str] = {}
        for piece in evidence:
            if piece.strength == "invalid":
                continue
            for scheme, value in piece.identifiers.items():
                identifiers.setdefault(scheme.lower(), value)
        reservations = [
            p for p in evidence if p.tdm_reservation is not None and p.strength != "invalid"
        ]
        reservations.sort(
            key=lambda p: (not p.tdm_reservation.reserved, _STRENGTH_ORDER[p.strength])  # type: ignore[union-attr]
        )
        return cls(
            evidence=evidence,
            identifiers=identifiers,
            tdm_reservation=reservations[0].tdm_reservation if reservations else None,
            failures=failures or [],
        )

    @property
    def ai_evidence(self) -> list[ProvenanceEvidence]:
        """Every piece that claims AI generation, the strongest first (invalid ones last)."""
        pieces = [p for p in self.evidence if p.claims_ai]
        return sorted(pieces, key=lambda p: _STRENGTH_ORDER[p.strength])

    @property
    def ai_generated(self) -> bool:
        """Grounds for an AI label: a verified or declared claim (see the module docstring)."""
        return any(p.is_grounds for p in self.evidence)

    @property
    def ai_system(self) -> str | None:
        """The AI system the strongest grounds name."""
        for piece in self.ai_evidence:
            if piece.is_grounds and piece.ai_system:
                return piece.ai_system
        return None

    @property
    def empty(self) -> bool:
        return not self.evidence and not self.failures

    def compact(self, max_pieces: int = 8) -> Provenance:
        """Without readers' details and with the first pieces only: what a match carries of
        its work's provenance (identifiers and TDM reservation kept whole)."""
        return self.model_copy(
            update={
                "evidence": [
                    p.model_copy(update={"details": {}}) for p in self.evidence[:max_pieces]
                ],
                "failures": [],
            }
        )


class ProvenancePublic(BaseModel):
    """What the API shows: the provenance, with the conclusion drawn from it."""

    ai_generated: bool = False  # grounds for an AI label (verified or declared evidence)
    ai_system: str | None = None
    evidence: list[ProvenanceEvidence] = Field(default_factory=list)
    identifiers: dict[str, str] = Field(default_factory=dict)
    tdm_reservation: TdmReservation | None = None
    failures: list[ReaderFailure] = Field(default_factory=list)

    @classmethod
    def of(cls, provenance: Provenance) -> ProvenancePublic:
        return cls(
            ai_generated=provenance.ai_generated,
            ai_system=provenance.ai_system,
            evidence=provenance.evidence,
            identifiers=provenance.identifiers,
            tdm_reservation=provenance.tdm_reservation,
            failures=provenance.failures,
        )
