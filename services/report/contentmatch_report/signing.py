"""Ed25519 signatures over a canonical serialisation of a report.

Canonical form: the report without its ``signature`` member, as JSON with sorted keys, no
insignificant whitespace, UTF-8. Floats round-trip exactly through Python's repr, so re-parsing a
stored report and canonicalising again yields the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "Ed25519"
CANONICALIZATION = "json-sorted-compact-utf8"


def canonical_bytes(report: dict[str, Any]) -> bytes:
    body = {k: v for k, v in report.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


class ReportSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def from_config(cls, key_b64: str, key_file: str) -> ReportSigner:
        """The key from configuration; else from ``key_file``, created there on first use (dev)."""
        if key_b64:
            return cls(Ed25519PrivateKey.from_private_bytes(base64.b64decode(key_b64)))
        path = Path(key_file)
        if path.exists():
            return cls(Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text())))
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written 0600 from the start: the key never exists world-readable.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(raw).decode())
        return cls(key)

    def public_key_info(self) -> dict[str, str]:
        raw = _raw_public(self.public_key)
        pem = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        return {
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
            "public_key": base64.b64encode(raw).decode(),
            "public_key_pem": pem,
        }

    def sign(self, report: dict[str, Any]) -> dict[str, Any]:
        """Return the report with its ``signature`` member set."""
        signature = self._private.sign(canonical_bytes(report))
        return {
            **{k: v for k, v in report.items() if k != "signature"},
            "signature": {
                "algorithm": ALGORITHM,
                "canonicalization": CANONICALIZATION,
                "key_id": self.key_id,
                "value": base64.b64encode(signature).decode(),
            },
        }


class VerificationError(Exception):
    pass


def verify_report(report: dict[str, Any], public_key_b64: str) -> None:
    """Raise :class:`VerificationError` with the reason unless the signature is authentic."""
    sig = report.get("signature")
    if not isinstance(sig, dict) or "value" not in sig:
        raise VerificationError("the report has no signature")
    if sig.get("algorithm") != ALGORITHM:
        raise VerificationError(f"unsupported signature algorithm {sig.get('algorithm')!r}")
    if sig.get("canonicalization") != CANONICALIZATION:
        raise VerificationError(f"unsupported canonicalization {sig.get('canonicalization')!r}")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    except ValueError as exc:  # binascii.Error is a ValueError too
        raise VerificationError(f"not an Ed25519 public key: {exc}") from exc
    if sig.get("key_id") != key_id_of(public_key):
        raise VerificationError("signed with another key (key_id differs)")
    try:
        public_key.verify(base64.b64decode(sig["value"]), canonical_bytes(report))
    except (InvalidSignature, ValueError) as exc:
        raise VerificationError(
            "signature does not match the content: the report was altered"
        ) from exc
