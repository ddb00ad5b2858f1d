"""The page a person reads: rendered from a real report, opened in headless Chromium.

The page is saved to a file and opened from there, as someone would open an evidence page
attached to a notice: it must show everything without the API (pictures inlined) and without
console errors (a Content-Security-Policy violation, a script error). The screenshots are kept
in the test state directory (``screenshots/``) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from contentmatch_shared.client import Endpoints
from tests.e2e.conftest import Tenants
from tests.e2e.report_parties import ReportParties, make_parties, register_image, upload_copy
from tests.support.stack import Stack

SEED = 7201
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What Chromium logs for page errors with --enable-logging=stderr (console errors and uncaught
# exceptions; a blocked resource shows up as a console error too).
_PAGE_ERRORS = re.compile(r"Uncaught|ERROR:CONSOLE|CONSOLE\(\d+\)\].*(?:error|Refused)", re.I)


@pytest.fixture(scope="module")
def parties(tenants: Tenants, endpoints: Endpoints) -> Iterator[ReportParties]:
    made = make_parties(tenants.operator, endpoints, "html")
    yield made
    made.close()


@pytest.fixture(scope="module")
def both_reports(parties: ReportParties) -> dict[str, Any]:
    """One picture registered as a work (label) and as an AI output (ai-lab); a platform uploads
    its centre cropped: an enforcement and an attribution report, linked."""
    work_id = register_image(
        parties.label,
        SEED,
        {
            "title": "Harbour at dusk",
            "policy": "block",
            "identifiers": {"isrc": "GB-HTM-26-00001"},
            "territories": ["FR", "DE"],
        },
    )
    ai_id = register_image(
        parties.ai_lab,
        SEED,
        {
            "title": "Generated harbour",
            "kind": "ai_output",
            "policy": "track",
            "ai_system": {"provider": "PixelForge", "model": "pf-diffusion", "version": "3.1"},
        },
    )
    upload = upload_copy(parties.tube, SEED, "center_crop_60", external_id="post-42")
    by_work = {r["work_id"]: r["report_id"] for r in upload["reports"]}
    assert set(by_work) == {work_id, ai_id}, upload
    return {"enforcement": by_work[work_id], "attribution": by_work[ai_id]}


def _screenshot(html: Path, png: Path, profile: Path) -> str:
    assert CHROMIUM, "Debian's chromium package is needed for this test"
    done = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={png}",
            "--window-size=1200,1600", "--enable-logging=stderr", "--v=0", html.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


@pytest.mark.parametrize("kind", ["enforcement", "attribution"])
def test_report_page_renders_in_chromium_without_errors(
    kind: str, parties: ReportParties, both_reports: dict[str, Any], stack: Stack, tmp_path: Path
) -> None:
    report_id = both_reports[kind]
    # The upload's platform reads both reports, so its page links the other one.
    response = parties.tube.report_raw(report_id, "html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    # Summary, decision, evidence, pictures (inline), signature, the linked report.
    assert "Authentic" in page and "NOT AUTHENTIC" not in page
    assert page.count("data:image/jpeg;base64,") == 2
    other = both_reports["attribution" if kind == "enforcement" else "enforcement"]
    assert f'href="{other}?format=html"' in page
    # The work's own tenant cannot read the other tenant's report: its page does not link it.
    owner = parties.label_enforcement if kind == "enforcement" else parties.ai_lab
    assert f'href="{other}?format=html"' not in owner.report_raw(report_id, "html").text
    if kind == "enforcement":
        assert "Take the upload down" in page and "Harbour at dusk" in page
        assert "GBHTM2600001" in page  # stored in its compact form
    else:
        assert "Label as AI-generated" in page and "PixelForge" in page and "3.1" in page

    html = tmp_path / f"{kind}.html"
    html.write_text(page, encoding="utf-8")
    png = tmp_path / f"{kind}.png"
    log = _screenshot(html, png, tmp_path / "profile")
    errors = [line for line in log.splitlines() if _PAGE_ERRORS.search(line)]
    assert not errors, errors

    assert png.exists() and png.stat().st_size > 30_000
    shot = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    assert shot.shape[:2] == (1600, 1200)
    not_white = (shot < 235).any(axis=2).mean()
    assert 0.05 < not_white < 0.8, not_white  # text, cards and pictures; not a blank page
    colours = len(np.unique(shot.reshape(-1, 3)[::13], axis=0))
    assert colours > 500, colours  # the thumbnails are there, not just flat text

    keep = stack.infra.state_dir / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, keep / png.name)
    shutil.copy(html, keep / html.name)
