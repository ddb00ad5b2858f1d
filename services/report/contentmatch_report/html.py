"""The human-readable page of a report (``?format=html``).

Self-contained on purpose: the pictures are inlined as ``data:`` URIs and the styles are inline,
so the page can be saved, mailed or attached to a takedown notice and still shows everything
(an ``<img src>`` pointing at the API would need the reader's API key).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from contentmatch_report.builder import ACTION_MEANINGS, AGREEMENT_KEYS, DISTANCE_KEYS
from contentmatch_report.signing import (
    ReportSigner,
    VerificationError,
    verify_report,
    verify_report_with_keys,
)
from contentmatch_report.thumbnails import normalised_region
from contentmatch_report.timeline import timecode

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["timecode"] = timecode


def _when(value: object) -> str:
    """An ISO 8601 instant as ``2026-11-27 12:00:05 UTC`` (the JSON keeps full precision)."""
    try:
        moment = datetime.fromisoformat(str(value)).astimezone(UTC)
    except ValueError:
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _region(value: object) -> str | None:
    """A matched region as words, or None when absent or the whole picture."""
    box = normalised_region(value)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return (
        f"{(x1 - x0) * 100:.0f} % by {(y1 - y0) * 100:.0f} % of the picture, "
        f"from {x0 * 100:.0f} % across and {y0 * 100:.0f} % down"
    )


_env.filters["when"] = _when
_env.filters["region"] = _region

ACTION_TITLES = {
    "block": "Block",
    "monetize": "Monetise",
    "track": "Track",
    "none": "No action",
    "label_ai_generated": "Label as AI-generated",
}


@dataclass
class PictureCheck:
    name: str
    role: str
    ok: bool
    message: str
    data_uri: str | None = None


@dataclass
class SignatureStatus:
    """Whether the report is the one the service signed, and its pictures the ones it named."""

    ok: bool
    message: str
    pictures: list[PictureCheck] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        return self.ok and all(p.ok for p in self.pictures)


def check_report(
    report: dict[str, Any], keys: Mapping[str, str] | str, pictures: dict[str, bytes | None]
) -> SignatureStatus:
    """``keys``: key ids to base64 public keys (this service's key history), or one key."""
    try:
        if isinstance(keys, str):
            verify_report(report, keys)
        else:
            verify_report_with_keys(report, keys)
        status = SignatureStatus(True, "valid: signed by this service's key")
    except VerificationError as exc:
        status = SignatureStatus(False, f"NOT VALID: {exc}")
    for ref in report.get("evidence", {}).get("pictures", []):
        data = pictures.get(ref["name"])
        if data is None:
            status.pictures.append(PictureCheck(ref["name"], ref["role"], False, "missing"))
            continue
        uri = f"data:{ref['content_type']};base64,{base64.b64encode(data).decode()}"
        if hashlib.sha256(data).hexdigest() != ref["sha256"]:
            message = "differs from the signed sha256"
            status.pictures.append(PictureCheck(ref["name"], ref["role"], False, message, uri))
        else:
            message = "matches the signed sha256"
            status.pictures.append(PictureCheck(ref["name"], ref["role"], True, message, uri))
    return status


def render_report(
    report: dict[str, Any],
    signer: ReportSigner,
    pictures: dict[str, bytes | None],
    related: list[dict[str, Any]] | None = None,
) -> str:
    """The page; ``pictures`` maps the names in ``evidence.pictures`` to their stored bytes,
    ``related`` holds the summaries of the related reports the reader may read."""
    status = check_report(report, signer.verification_keys(), pictures)
    decision = report.get("decision", {})
    action = decision.get("action", "")
    return _env.get_template("report.html").render(
        report=report,
        action_title=ACTION_TITLES.get(action, action),
        action_meaning=decision.get("meaning") or ACTION_MEANINGS.get(action, ""),
        status=status,
        pictures={p.role: p for p in status.pictures},
        related=related or [],
        raw_json=json.dumps(report, indent=2, ensure_ascii=False),
        distance_meanings=DISTANCE_KEYS,
        agreement_meanings=AGREEMENT_KEYS,
    )
