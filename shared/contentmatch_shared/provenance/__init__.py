"""Provenance read from a file itself: the evidence model shared by every service.

The fingerprint service computes a :class:`Provenance` for every work and upload (its readers live
in ``contentmatch_fingerprint.signals.provenance``); it travels on ``works.registry`` and
``uploads.fingerprinted``/``uploads.matched``, is shown by ``GET /v1/works|uploads/{id}`` and
decides attribution reports in the report service. See ``docs/provenance.md``.
"""

from contentmatch_shared.provenance.evidence import (
    AI_DIGITAL_SOURCE_TYPES,
    EvidenceKind,
    EvidenceSource,
    EvidenceStrength,
    Provenance,
    ProvenanceEvidence,
    ProvenancePublic,
    ReaderFailure,
    SignerInfo,
    TdmReservation,
    TrustLevel,
    digital_source_type_name,
    is_ai_digital_source_type,
)

__all__ = [
    "AI_DIGITAL_SOURCE_TYPES",
    "EvidenceKind",
    "EvidenceSource",
    "EvidenceStrength",
    "Provenance",
    "ProvenanceEvidence",
    "ProvenancePublic",
    "ReaderFailure",
    "SignerInfo",
    "TdmReservation",
    "TrustLevel",
    "digital_source_type_name",
    "is_ai_digital_source_type",
]
