"""Turns a match result into reports: one per matched work.

A match with a registered work gives an **enforcement** report (the work's policy, and what it
means for the upload's territory); a match with a registered AI output gives an **attribution**
report (label the upload AI-generated, name the system and who registered it). Reports about the
same upload name each other in ``related_reports``, by id and kind only: the signed report is
served to every reader of it (the upload's platform, the work's tenant, operators), and the other
works may belong to other tenants. Readers resolve the related reports they may read at serve time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from contentmatch_report.provenance import (
    ACTION_REASON_PROVENANCE,
    attribution_from_provenance,
    grounds_of,
    needs_provenance_report,
    piece_view,
    provenance_reason,
    provenance_report_id,
    provenance_section,
)
from contentmatch_shared.events import Match, UploadMatched

ReportKind = Literal["enforcement", "attribution"]
REPORT_SCHEMA_VERSION = 1


def report_id_for(upload_id: str, work_id: str) -> str:
    """Derived from the ids, so a replayed match overwrites the same report."""
    return "rep_" + hashlib.sha256(f"{upload_id}\x00{work_id}".encode()).hexdigest()[:32]


def kind_of(match: Match) -> ReportKind:
    return "attribution" if match.kind == "ai_output" else "enforcement"


# What each action asks of the platform, in words a person acts on.
ACTION_MEANINGS = {
    "block": "Take the upload down, or keep it from being published.",
    "monetize": "Keep the upload up and pay its revenue to the rightsholder.",
    "track": "Keep the upload up and record the use for the rightsholder; no action needed.",
    "none": "No action: the work's rights do not cover the upload's territory.",
    "label_ai_generated": "Label the upload as AI-generated, naming the AI system.",
}


def decision_for(match: Match, territory: str | None) -> dict[str, Any]:
    """The action a report asks for, and why, in the upload's territory when that matters."""
    territory = territory.upper() if territory else None
    if match.kind == "ai_output":
        system = match.ai_system
        name = f"{system.provider} {system.model}" if system else "an AI system"
        if system and system.version:
            name += f" {system.version}"
        return {
            "action": "label_ai_generated",
            "meaning": ACTION_MEANINGS["label_ai_generated"],
            "label": "AI-generated",
            "policy": match.policy,
            "reason": f"the upload matches an output of {name} registered by {match.tenant}",
        }
    decision: dict[str, Any] = {
        "action": match.policy,
        "meaning": ACTION_MEANINGS[match.policy],
        "policy": match.policy,
        "territory": territory,
        "applies_in_territory": None,  # the work has no territories: its policy applies anywhere
        "reason": f"the upload matches '{match.title}' registered by {match.tenant} "
        f"with policy {match.policy}",
    }
    if not match.territories:
        return decision
    territories = [t.upper() for t in match.territories]
    covered = ", ".join(territories)
    if territory is None:
        decision["reason"] += (
            f"; the work's rights cover {covered} and the upload's territory is unknown"
        )
    elif territory in territories:
        decision["applies_in_territory"] = True
        decision["reason"] += f" in {territory}, one of the work's territories ({covered})"
    else:
        decision.update(
            action="none",
            meaning=ACTION_MEANINGS["none"],
            applies_in_territory=False,
            reason=f"the upload matches '{match.title}' registered by {match.tenant}, but the "
            f"work's rights cover {covered}, not the upload's territory {territory}",
        )
    return decision


# Matcher evidence keys that are distances between the upload's and the work's signals (lower is
# closer), by signal: what a person checks "how strongly" with. Counts (inliers, votes) are not.
DISTANCE_KEYS = {
    "phash": "Hamming distance of 64-bit perceptual hashes",
    "pdq": "Hamming distance of 256-bit PDQ hashes",
    "dhash": "Hamming distance of 64-bit difference hashes",
    "chromaprint_ber": "bit error rate of aligned Chromaprint items",
}


# ... and counts of agreeing features (higher is closer), for the signals that count.
AGREEMENT_KEYS = {
    "orb_inliers": "ORB keypoints that agree on one geometric transform",
    "landmark_matches": "audio landmark hashes that agree on one time offset",
    "triplet_matches": "audio peak triplets that agree on one pitch shift, time scale and offset",
}


def _numbers(match: Match, keys: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in keys:
        value = match.evidence.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    return out


def signal_distances(match: Match) -> dict[str, float]:
    """The distance per signal, where the matcher measured it."""
    return _numbers(match, DISTANCE_KEYS)


def evidence_for(match: Match, pictures: EvidenceAttachments | None = None) -> dict[str, Any]:
    """What a person checks the decision by: distances, region or segments, pictures."""
    evidence: dict[str, Any] = {
        "media_type": match.media_type,
        "signal": match.signal,
        "score": match.score,
        "distance": match.distance,
        "signal_distances": signal_distances(match),
        "signal_agreements": _numbers(match, AGREEMENT_KEYS),
    }
    for key in ("region", "query_region"):
        if isinstance(match.evidence.get(key), dict):
            evidence[key] = match.evidence[key]
    if match.segments:
        evidence["segments"] = [s.model_dump() for s in match.segments]
        evidence["matched_seconds"] = round(
            sum(s.query_end - s.query_start for s in match.segments), 3
        )
    if pictures is not None:
        if pictures.upload_duration_s is not None:
            evidence["upload_duration_s"] = pictures.upload_duration_s
        evidence["pictures"] = pictures.references
        if pictures.missing:
            evidence["pictures_missing"] = pictures.missing
    return evidence


@dataclass(frozen=True)
class EvidenceAttachments:
    """The stored pictures of one report, as the report names them (keys, sizes, sha256)."""

    references: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    upload_duration_s: float | None = None


def report_ids_for(result: UploadMatched) -> list[tuple[str, ReportKind]]:
    """Every report one match result gives, by id and kind (match order, then provenance)."""
    ids: list[tuple[str, ReportKind]] = [
        (report_id_for(result.upload_id, m.work_id), kind_of(m)) for m in result.matches
    ]
    if needs_provenance_report(result):
        ids.append((provenance_report_id(result.upload_id), "attribution"))
    return ids


def _upload_section(result: UploadMatched) -> dict[str, Any]:
    return {
        "upload_id": result.upload_id,
        "tenant": result.tenant,
        "media_type": result.media_type,
        "external_id": result.metadata.external_id,
        "uploader": result.metadata.uploader,
        "territory": result.metadata.territory,
        "sha256": result.object.sha256,
        "size": result.object.size,
        "submitted_at": result.submitted_at.isoformat(),
        "matched_at": result.matched_at.isoformat(),
    }


def _related(all_ids: list[tuple[str, ReportKind]], report_id: str) -> list[dict[str, Any]]:
    return [{"report_id": i, "kind": k} for i, k in all_ids if i != report_id]


def build_reports(
    result: UploadMatched,
    created_at: dict[str, datetime],
    attachments: dict[str, EvidenceAttachments] | None = None,
) -> list[dict[str, Any]]:
    """The unsigned reports for one match result; ``created_at`` maps report ids to their time,
    ``attachments`` work ids to the pictures stored for that work's report."""
    all_ids = report_ids_for(result)
    ids = [report_id_for(result.upload_id, m.work_id) for m in result.matches]
    reports = []
    for match, report_id in zip(result.matches, ids, strict=True):
        kind = kind_of(match)
        report: dict[str, Any] = {
            "report_id": report_id,
            "kind": kind,
            "schema_version": REPORT_SCHEMA_VERSION,
            "created_at": created_at[report_id].isoformat(),
            "upload": _upload_section(result),
            "work": {
                "work_id": match.work_id,
                "title": match.title,
                "kind": match.kind,
                "tenant": match.tenant,
                "policy": match.policy,
                "identifiers": match.identifiers,
                "territories": match.territories,
                "sha256": match.work_object.sha256 if match.work_object else None,
            },
            "matches": [
                match.model_dump(mode="json", exclude={"work_object", "omitted", "work_provenance"})
            ],
            "decision": decision_for(match, result.metadata.territory),
            "evidence": evidence_for(match, (attachments or {}).get(match.work_id)),
            "related_reports": _related(all_ids, report_id),
        }
        if (section := provenance_section(result, match)) is not None:
            report["provenance"] = section
        if match.omitted:  # a work registered before metadata was bounded
            report["work"]["omitted"] = match.omitted
        if kind == "attribution":
            report["attribution"] = {
                "label": "AI-generated",
                "ai_system": match.ai_system.model_dump() if match.ai_system else None,
                "registered_by": match.tenant,
                "basis": "registered_output",
            }
            if result.provenance is not None:
                grounds, other = grounds_of(result.provenance)
                report["attribution"]["provenance_grounds"] = [piece_view(p) for p in grounds]
                report["attribution"]["provenance_not_grounds"] = [piece_view(p) for p in other]
        reports.append(report)
    if needs_provenance_report(result):
        reports.append(_provenance_report(result, created_at, all_ids))
    return reports


def _provenance_report(
    result: UploadMatched,
    created_at: dict[str, datetime],
    all_ids: list[tuple[str, ReportKind]],
) -> dict[str, Any]:
    """The attribution report an upload earns by its own provenance (no registered work)."""
    assert result.provenance is not None
    report_id = provenance_report_id(result.upload_id)
    return {
        "report_id": report_id,
        "kind": "attribution",
        "schema_version": REPORT_SCHEMA_VERSION,
        "created_at": created_at[report_id].isoformat(),
        "upload": _upload_section(result),
        "work": None,
        "matches": [],
        "decision": {
            "action": "label_ai_generated",
            "meaning": ACTION_MEANINGS["label_ai_generated"],
            "label": "AI-generated",
            "policy": None,
            "basis": ACTION_REASON_PROVENANCE,
            "reason": provenance_reason(result.provenance),
        },
        "evidence": {"media_type": result.media_type, "basis": ACTION_REASON_PROVENANCE},
        "attribution": attribution_from_provenance(result.provenance),
        "provenance": provenance_section(result, None),
        "related_reports": _related(all_ids, report_id),
    }


def summary_of(report: dict[str, Any]) -> dict[str, Any]:
    """What a listing shows of a report."""
    work = report.get("work") or {}  # none in an attribution report from provenance alone
    return {
        "report_id": report["report_id"],
        "kind": report["kind"],
        "created_at": report["created_at"],
        "upload_id": report["upload"]["upload_id"],
        "platform_tenant": report["upload"]["tenant"],
        "work_id": work.get("work_id"),
        "work_title": work.get("title"),
        "work_tenant": work.get("tenant"),
        "action": report["decision"]["action"],
        "score": report["evidence"].get("score"),
    }
