"""The human-readable page of a report (``?format=html``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from contentmatch_report.signing import ReportSigner, VerificationError, verify_report

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def render_report(report: dict[str, Any], signer: ReportSigner) -> str:
    try:
        verify_report(report, signer.public_key_info()["public_key"])
        signature_status = "valid"
    except VerificationError as exc:
        signature_status = f"INVALID: {exc}"
    return _env.get_template("report.html").render(report=report, signature_status=signature_status)
