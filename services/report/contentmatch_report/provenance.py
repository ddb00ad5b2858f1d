"""What reports say about provenance: the upload's own (and the matched work's), and the
attribution report an upload earns by declaring AI generation itself.

An upload whose provenance gives grounds for an AI label (``Provenance.ai_generated``: a verified
or declared claim; never a watermark alone, never a broken manifest) gets an **attribution**
report even when it matches no registered AI output. Its id derives from the upload alone, so a
replay overwrites it. When the upload also matches a registered AI output, that report carries the
provenance evidence instead and no second attribution report is written.
"""

from __future__ import annotations

import hashlib
from typing import Any

from contentmatch_shared.events import Match, UploadMatched
from contentmatch_shared.provenance import Provenance, ProvenanceEvidence, TdmReservation

PROVENANCE_REPORT_SUBJECT = "provenance"  # in place of a work id in the report id
ACTION_REASON_PROVENANCE = "provenance"  # a decision's basis: the upload's own provenance


def provenance_report_id(upload_id: str) -> str:
    digest = hashlib.sha256(f"{upload_id}\x00{PROVENANCE_REPORT_SUBJECT}".encode()).hexdigest()
    return "rep_" + digest[:32]


STRENGTH_MEANINGS = {
    "verified": "a valid manifest signed by a signer on a C2PA trust list",
    "declared": "stated by the file (unsigned metadata, or a signer no trust list vouches for)",
    "supporting": "corroborates; never decides alone",
    "invalid": "present but broken or tampered: not grounds for anything",
}


def piece_view(piece: ProvenanceEvidence) -> dict[str, Any]:
    """One piece as a report shows it."""
    view = piece.model_dump(mode="json", exclude_none=True)
    view["strength_meaning"] = STRENGTH_MEANINGS[piece.strength]
    for key in ("identifiers", "details"):
        if not view.get(key):
            view.pop(key, None)
    return view


def provenance_view(provenance: Provenance) -> dict[str, Any]:
    return {
        "ai_generated": provenance.ai_generated,
        "ai_system": provenance.ai_system,
        "evidence": [piece_view(p) for p in provenance.evidence],
        "identifiers": provenance.identifiers,
        "tdm_reservation": provenance.tdm_reservation.model_dump(mode="json")
        if provenance.tdm_reservation
        else None,
        "failures": [f.model_dump(mode="json") for f in provenance.failures],
    }


def tdm_statement(reservation: TdmReservation) -> str:
    uses = f" for {', '.join(reservation.uses)}" if reservation.uses else ""
    if reservation.reserved:
        return (
            f"The work's file reserves text-and-data mining{uses} "
            f"({reservation.source}: {reservation.value})."
        )
    return f"The work's file permits text-and-data mining{uses} ({reservation.source}: " + (
        f"{reservation.value})."
    )


def provenance_section(result: UploadMatched, match: Match | None) -> dict[str, Any] | None:
    """The report's ``provenance``: the upload's, and the matched work's with its TDM
    reservation stated (None when neither side has any)."""
    section: dict[str, Any] = {}
    if result.provenance is not None and not result.provenance.empty:
        section["upload"] = provenance_view(result.provenance)
    if match is not None:
        if match.work_provenance is not None and not match.work_provenance.empty:
            section["work"] = provenance_view(match.work_provenance)
        reservation = match.tdm_reservation or (
            match.work_provenance.tdm_reservation if match.work_provenance else None
        )
        if reservation is not None:
            section["work_tdm_reservation"] = {
                **reservation.model_dump(mode="json"),
                "statement": tdm_statement(reservation),
            }
    return section or None


def grounds_of(provenance: Provenance) -> tuple[list[ProvenanceEvidence], list[ProvenanceEvidence]]:
    """The pieces claiming AI generation that ground a label, and those that do not (supporting
    and invalid ones), each strongest first."""
    pieces = provenance.ai_evidence
    return [p for p in pieces if p.is_grounds], [p for p in pieces if not p.is_grounds]


def _signer_words(piece: ProvenanceEvidence) -> str:
    if piece.signer is None:
        return ""
    who = piece.signer.common_name or piece.signer.organization or "an unnamed signer"
    return f", signed by {who} (trust: {piece.signer.trust})"


def provenance_reason(provenance: Provenance) -> str:
    grounds, _ = grounds_of(provenance)
    first = grounds[0]
    system = f" by {first.ai_system}" if first.ai_system else ""
    reason = (
        f"the upload's own {first.source.upper()} provenance says it was generated{system}"
        f"{_signer_words(first)}; evidence {first.strength}"
    )
    if len(grounds) > 1:
        reason += f", with {len(grounds) - 1} more piece(s) of evidence"
    return reason


def attribution_from_provenance(provenance: Provenance) -> dict[str, Any]:
    grounds, other = grounds_of(provenance)
    return {
        "label": "AI-generated",
        "basis": "provenance",
        "ai_system": None,  # a registered system's provider/model: none registered here
        "named_system": provenance.ai_system,
        "registered_by": None,
        "grounds": [piece_view(p) for p in grounds],
        "not_grounds": [piece_view(p) for p in other],
    }


def needs_provenance_report(result: UploadMatched) -> bool:
    """An upload declaring AI generation, with no registered AI output among its matches."""
    if result.provenance is None or not result.provenance.ai_generated:
        return False
    return not any(m.kind == "ai_output" for m in result.matches)
