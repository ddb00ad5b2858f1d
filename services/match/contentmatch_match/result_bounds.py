"""Keeps an ``uploads.matched`` record within what Kafka takes, whatever the registry holds.

Works registered before ingest bounded their metadata may carry a megabyte of identifiers; ten
such matches would exceed the producer's record limit, the publish would fail on every retry and
the upload would stay pending. So a match result carries at most :data:`MAX_MATCHES` matches and,
per match, bounded identifiers, territories and evidence: what the report needs (decision,
evidence, identifiers as registered today). What a match leaves out is named in its ``omitted``
list, which the report shows. If the record is still too large, smaller forms are published
rather than none: evidence reduced to numbers, then no identifiers or territories, then fewer
matches (lowest scores first, never below one).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from contentmatch_shared.events import Match, UploadMatched
from contentmatch_shared.kafka.producer import MAX_RECORD_BYTES

log = logging.getLogger(__name__)

MAX_MATCHES = 10
MAX_IDENTIFIER_BYTES = 8 * 1024  # ingest allows 20 identifiers of 200 characters: ~5 KiB
MAX_TERRITORIES = 300  # every ISO 3166-1 code fits
MAX_EVIDENCE_BYTES = 16 * 1024
# The envelope around the payload (ids, type, producer, timestamps) is well under this.
ENVELOPE_ALLOWANCE_BYTES = 16 * 1024


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _bounded_identifiers(identifiers: dict[str, str]) -> tuple[dict[str, str], int]:
    kept: dict[str, str] = {}
    used = 2
    for scheme, value in identifiers.items():
        cost = _size({scheme: value}) - 1  # one member: "scheme":"value" and a comma
        if used + cost > MAX_IDENTIFIER_BYTES:
            break
        kept[scheme] = value
        used += cost
    return kept, len(identifiers) - len(kept)


def _numbers_only(evidence: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in evidence.items()
        if isinstance(v, int | float | str | bool) and _size(v) <= 256
    }


def bound_match(match: Match) -> Match:
    """The match with identifiers, territories and evidence within their bounds."""
    omitted = list(match.omitted)
    update: dict[str, Any] = {}
    identifiers, dropped = _bounded_identifiers(match.identifiers)
    if dropped:
        update["identifiers"] = identifiers
        omitted.append(f"{dropped} of {len(match.identifiers)} identifiers (record size)")
    if len(match.territories) > MAX_TERRITORIES:
        update["territories"] = match.territories[:MAX_TERRITORIES]
        omitted.append(f"{len(match.territories) - MAX_TERRITORIES} territories (record size)")
    if _size(match.evidence) > MAX_EVIDENCE_BYTES:
        update["evidence"] = _numbers_only(match.evidence)
        omitted.append("evidence beyond its numbers (record size)")
    if not update:
        return match
    return match.model_copy(update={**update, "omitted": omitted})


def _smaller(match: Match, step: str) -> Match:
    if step == "evidence" and match.evidence != _numbers_only(match.evidence):
        note = "evidence beyond its numbers (record size)"
        omitted = match.omitted if note in match.omitted else [*match.omitted, note]
        return match.model_copy(
            update={"evidence": _numbers_only(match.evidence), "omitted": omitted}
        )
    if step == "metadata" and (match.identifiers or match.territories or match.work_provenance):
        note = "identifiers, territories and the work's provenance (record size)"
        return match.model_copy(
            update={
                "identifiers": {},
                "territories": [],
                "work_provenance": None,
                "omitted": [*match.omitted, note],
            }
        )
    return match


def record_bytes(result: UploadMatched) -> int:
    return len(result.model_dump_json().encode()) + ENVELOPE_ALLOWANCE_BYTES


def bound_result(result: UploadMatched, max_bytes: int = MAX_RECORD_BYTES) -> UploadMatched:
    """A result whose record fits ``max_bytes``: the best matches, each within its bounds; if
    that is still too large, the smaller forms described in the module docstring."""
    matches = [bound_match(m) for m in result.matches[:MAX_MATCHES]]
    bounded = result.model_copy(update={"matches": matches})
    if len(result.matches) > MAX_MATCHES:
        log.warning(
            "upload %s: %d matches, the best %d published",
            result.upload_id,
            len(result.matches),
            MAX_MATCHES,
        )
    for step in ("evidence", "metadata"):
        if record_bytes(bounded) <= max_bytes:
            return bounded
        log.warning("upload %s: match result over %d bytes, %s reduced", result.upload_id,
                    max_bytes, step)  # fmt: skip
        bounded = bounded.model_copy(
            update={"matches": [_smaller(m, step) for m in bounded.matches]}
        )
    while record_bytes(bounded) > max_bytes and len(bounded.matches) > 1:
        bounded = bounded.model_copy(update={"matches": bounded.matches[:-1]})
    return bounded
