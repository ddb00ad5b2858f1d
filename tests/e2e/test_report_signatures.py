"""Signatures others can verify: RFC 8785 reports, a verifier in another language, key rotation.

A report is issued, the report service is restarted with a new signing key (the old public key
listed as retired), and a second report is issued. Both verify with the ``contentmatch`` CLI and
with the Node.js verifier in ``tests/ops/verify_report.mjs`` (written from the README alone),
each picking its key by ``key_id`` from ``GET /v1/reports/public-keys``; a tampered report and
one with a duplicate member are refused by both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from contentmatch_shared.client import Endpoints
from tests.e2e.conftest import Tenants
from tests.e2e.report_parties import ReportParties, make_parties, register_image, upload_copy
from tests.support.stack import Stack

NODE_VERIFIER = Path(__file__).parents[1] / "ops" / "verify_report.mjs"
BEFORE_SEED, AFTER_SEED = 7401, 7402
ROTATION_ENV = (
    "CM_REPORT_SIGNING_KEY",
    "CM_REPORT_SIGNING_KEY_VALID_FROM",
    "CM_REPORT_PREVIOUS_PUBLIC_KEYS",
)


@pytest.fixture(scope="module")
def parties(tenants: Tenants, endpoints: Endpoints) -> Iterator[ReportParties]:
    made = make_parties(tenants.operator, endpoints, "sig")
    yield made
    made.close()


def _report_for(parties: ReportParties, seed: int, title: str) -> str:
    register_image(parties.label, seed, {"title": title, "policy": "block"})
    upload = upload_copy(parties.tube, seed, "jpeg_q75")
    return str(upload["report_id"])


def _restart_report(stack: Stack, overrides: dict[str, str]) -> None:
    stack.stop("report")
    for name in ROTATION_ENV:
        stack.env_overrides.pop(name, None)
    stack.env_overrides.update(overrides)
    stack.start("report")


@pytest.fixture(scope="module")
def rotated(parties: ReportParties, stack: Stack) -> Iterator[dict[str, Any]]:
    """One report before a rotation, one after; the stack's own key is back afterwards."""
    base = stack.url("report")
    old_key = httpx.get(f"{base}/v1/reports/public-key").json()
    before = _report_for(parties, BEFORE_SEED, "Signed before the rotation")
    made = subprocess.run(
        [sys.executable, "-m", "contentmatch_shared.cli", "report", "keygen"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    new_key = json.loads(made.stdout)
    now = datetime.now(UTC).isoformat()
    retired = [{"public_key": old_key["public_key"], "valid_until": now}]
    _restart_report(
        stack,
        {
            "CM_REPORT_SIGNING_KEY": new_key["private_key"],
            "CM_REPORT_SIGNING_KEY_VALID_FROM": now,
            "CM_REPORT_PREVIOUS_PUBLIC_KEYS": json.dumps(retired),
        },
    )
    try:
        after = _report_for(parties, AFTER_SEED, "Signed after the rotation")
        yield {"before": before, "after": after, "old": old_key, "new": new_key, "base": base}
    finally:
        _restart_report(stack, {})


def _cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contentmatch_shared.cli", "report", "verify", str(path), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _node(path: Path, keys: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "Node.js 20 is needed for the other-language verifier"
    return subprocess.run(
        [node, str(NODE_VERIFIER), str(path), keys], capture_output=True, text=True, timeout=60
    )


def test_the_key_history_lists_the_retired_key_with_its_dates(rotated: dict[str, Any]) -> None:
    base = rotated["base"]
    current = httpx.get(f"{base}/v1/reports/public-key").json()
    assert current["key_id"] == rotated["new"]["key_id"] and current["current"] is True
    listing = httpx.get(f"{base}/v1/reports/public-keys")  # no API key: public by nature
    assert listing.status_code == 200, listing.text
    keys = listing.json()["keys"]
    assert [k["key_id"] for k in keys] == [rotated["new"]["key_id"], rotated["old"]["key_id"]]
    assert keys[0]["valid_until"] is None and keys[0]["valid_from"] is not None
    assert keys[1]["valid_until"] == keys[0]["valid_from"] and keys[1]["current"] is False
    assert keys[1]["public_key"] == rotated["old"]["public_key"]


def test_reports_from_before_and_after_a_rotation_verify_in_python_and_node(
    parties: ReportParties, rotated: dict[str, Any], tmp_path: Path
) -> None:
    keys_url = f"{rotated['base']}/v1/reports/public-keys"
    saved_keys = tmp_path / "keys.json"
    saved_keys.write_bytes(httpx.get(keys_url).content)
    for moment, key in (("before", rotated["old"]), ("after", rotated["new"])):
        served = parties.label.report_raw(rotated[moment]).content
        signature = json.loads(served)["signature"]
        assert signature["key_id"] == key["key_id"]
        assert signature["canonicalization"] == "RFC8785"
        path = tmp_path / f"{moment}.json"
        path.write_bytes(served)
        for done in (
            _cli(path, "--url", rotated["base"]),
            _cli(path, "--keys", str(saved_keys)),
            _node(path, keys_url),
            _node(path, str(saved_keys)),
        ):
            assert done.returncode == 0, (moment, done.args, done.stderr)
            assert f"signed by key {key['key_id']}" in done.stdout
        page = parties.label.report_raw(rotated[moment], "html").text
        assert "Authentic" in page and "NOT AUTHENTIC" not in page


def test_a_tampered_report_and_a_duplicate_member_are_refused_by_both_verifiers(
    parties: ReportParties, rotated: dict[str, Any], tmp_path: Path
) -> None:
    keys_url = f"{rotated['base']}/v1/reports/public-keys"
    served = parties.label.report_raw(rotated["after"]).content
    tampered = served.replace(b'"action":"block"', b'"action":"track"', 1)
    assert tampered != served
    # A second "decision" member in front: parsers that keep the last see the signed one, those
    # that keep the first would act on "track". Both verifiers refuse the file outright.
    at = served.index(b'"decision":')
    duplicated = served[:at] + b'"decision":{"action":"track"},' + served[at:]
    for name, data, reason in (
        ("tampered", tampered, "altered"),
        ("duplicated", duplicated, "duplicate member name"),
    ):
        path = tmp_path / f"{name}.json"
        path.write_bytes(data)
        for done in (_cli(path, "--url", rotated["base"]), _node(path, keys_url)):
            assert done.returncode == 1, (name, done.args, done.stdout, done.stderr)
            assert "NOT AUTHENTIC" in done.stderr and reason in done.stderr, done.stderr
