"""Turns a match result into reports: one per matched work.

A match with a registered work gives an **enforcement** report (the work's policy, and what it
means for the upload's territory); a match with a registered AI output gives an **attribution**
report (label the upload AI-generated, name the system and who registered it). Reports about the
same upload name each other in ``related_reports``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from contentmatch_shared.events import Match, UploadMatched

ReportKind = Literal["enforcement", "attribution"]
REPORT_SCHEMA_VERSION = 1


def report_id_for(upload_id: str, work_id: str) -> str:
    """Derived from the ids, so a replayed match overwrites the same report."""
    return "rep_" + hashlib.sha256(f"{upload_id}\x00{work_id}".encode()).hexdigest()[:32]


def kind_of(match: Match) -> ReportKind:
    return "attribution" if match.kind == "ai_output" else "enforcement"


def decision_for(match: Match, territory: str | None) -> dict[str, Any]:
    if match.kind == "ai_output":
        system = match.ai_system
        name = f"{system.provider} {system.model}" if system else "an AI system"
        return {
            "action": "label_ai_generated",
            "label": "AI-generated",
            "policy": match.policy,
            "reason": f"the upload matches an output of {name} registered by {match.tenant}",
        }
    if match.territories and territory and territory.upper() not in match.territories:
        return {
            "action": "none",
            "policy": match.policy,
            "territory": territory.upper(),
            "applies_in_territory": False,
            "reason": f"the work's rights cover {', '.join(match.territories)}, "
            f"not the upload's territory {territory.upper()}",
        }
    return {
        "action": match.policy,
        "policy": match.policy,
        "territory": territory.upper() if territory else None,
        "applies_in_territory": True if match.territories and territory else None,
        "reason": f"the upload matches '{match.title}' registered by {match.tenant} "
        f"with policy {match.policy}",
    }


def evidence_for(match: Match) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "media_type": match.media_type,
        "signal": match.signal,
        "distance": match.distance,
        "score": match.score,
        **match.evidence,
    }
    if match.segments:
        evidence["segments"] = [s.model_dump() for s in match.segments]
        evidence["matched_seconds"] = round(
            sum(s.query_end - s.query_start for s in match.segments), 3
        )
    return evidence


def build_reports(result: UploadMatched, created_at: dict[str, datetime]) -> list[dict[str, Any]]:
    """The unsigned reports for one match result; ``created_at`` maps report ids to their time."""
    ids = [report_id_for(result.upload_id, m.work_id) for m in result.matches]
    reports = []
    for match, report_id in zip(result.matches, ids, strict=True):
        kind = kind_of(match)
        report: dict[str, Any] = {
            "report_id": report_id,
            "kind": kind,
            "schema_version": REPORT_SCHEMA_VERSION,
            "created_at": created_at[report_id].isoformat(),
            "upload": {
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
            },
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
            "matches": [match.model_dump(mode="json", exclude={"work_object"})],
            "decision": decision_for(match, result.metadata.territory),
            "evidence": evidence_for(match),
            "related_reports": [i for i in ids if i != report_id],
        }
        if kind == "attribution":
            report["attribution"] = {
                "label": "AI-generated",
                "ai_system": match.ai_system.model_dump() if match.ai_system else None,
                "registered_by": match.tenant,
            }
        reports.append(report)
    return reports


def summary_of(report: dict[str, Any]) -> dict[str, Any]:
    """What a listing shows of a report."""
    return {
        "report_id": report["report_id"],
        "kind": report["kind"],
        "created_at": report["created_at"],
        "upload_id": report["upload"]["upload_id"],
        "platform_tenant": report["upload"]["tenant"],
        "work_id": report["work"]["work_id"],
        "work_title": report["work"]["title"],
        "work_tenant": report["work"]["tenant"],
        "action": report["decision"]["action"],
        "score": report["evidence"].get("score"),
    }
