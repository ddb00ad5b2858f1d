"""The webhook signature scheme: t=<unix>,v1=<hex> over "<t>.<body>", verified like a receiver."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from contentmatch_delivery.signing import (
    SignatureError,
    new_secret,
    signature_header,
    verify,
)

BODY = b'{"id":"evt_1","type":"upload.verdict"}'


def test_header_is_the_documented_hmac() -> None:
    secret = new_secret()
    header = signature_header([secret], 1_700_000_000, BODY)
    expected = hmac.new(secret.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify(header, BODY, secret, now=1_700_000_010) == 1_700_000_000


def test_a_changed_body_or_another_secret_fails() -> None:
    secret = new_secret()
    header = signature_header([secret], 1_700_000_000, BODY)
    with pytest.raises(SignatureError, match="no v1"):
        verify(header, BODY + b" ", secret, now=1_700_000_000)
    with pytest.raises(SignatureError, match="no v1"):
        verify(header, BODY, new_secret(), now=1_700_000_000)


def test_a_stale_timestamp_fails() -> None:
    secret = new_secret()
    header = signature_header([secret], 1_700_000_000, BODY)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(header, BODY, secret, now=1_700_000_000 + 301)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(header, BODY, secret, now=1_700_000_000 - 301)


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = new_secret(), new_secret()
    header = signature_header([new, old], 1_700_000_000, BODY)
    assert header.count("v1=") == 2
    assert verify(header, BODY, old, now=1_700_000_000)
    assert verify(header, BODY, new, now=1_700_000_000)


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=1700000000", "t=x,v1=ab", "garbage"])
def test_malformed_headers_fail(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify(header, BODY, new_secret(), now=1_700_000_000)


def test_secrets_are_random_and_long() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_") and len(a) > 40


def test_the_readme_snippet_verifies_what_the_service_signs() -> None:
    import re
    import time
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    found = re.search(r"```python\n(import hashlib.*?)```", readme, re.S)
    assert found, "the README's verification snippet"
    namespace: dict[str, object] = {}
    exec(found[1], namespace)
    check = namespace["verify"]
    secret, now = new_secret(), int(time.time())
    header = signature_header([new_secret(), secret], now, BODY)
    assert check(header, BODY, secret) is True  # type: ignore[operator]
    assert check(header, BODY + b"x", secret) is False  # type: ignore[operator]
    stale = signature_header([secret], now - 3600, BODY)
    assert check(stale, BODY, secret) is False  # type: ignore[operator]
