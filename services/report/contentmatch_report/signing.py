"""Ed25519 signatures over a canonical serialisation of a report, and the keys that verify them.

Canonical form (``signature.canonicalization``):
- ``RFC8785`` (every report signed now): the report without its ``signature`` member, in the JSON
  Canonicalization Scheme (:mod:`contentmatch_report.jcs`), so any language can reproduce it;
- ``json-sorted-compact-utf8`` (reports signed before): Python's ``json.dumps`` with sorted keys,
  no whitespace, UTF-8. Still verified, so stored reports keep their proof.

Keys are named by ``key_id`` (the first 16 hex digits of the sha256 of the raw public key). The
signer knows its current key and the public halves of the keys it signed with before a rotation,
each with its validity dates; a verifier picks the key by the report's ``key_id``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contentmatch_report.jcs import CanonicalizationError, canonicalize
from contentmatch_shared.settings import PreviousSigningKey

ALGORITHM = "Ed25519"
CANONICALIZATION = "RFC8785"
LEGACY_CANONICALIZATION = "json-sorted-compact-utf8"


def canonical_bytes(report: dict[str, Any], canonicalization: str = CANONICALIZATION) -> bytes:
    """The signed bytes: the report without ``signature``, in the named canonical form."""
    body = {k: v for k, v in report.items() if k != "signature"}
    if canonicalization == CANONICALIZATION:
        return canonicalize(body)
    if canonicalization == LEGACY_CANONICALIZATION:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    raise VerificationError(f"unsupported canonicalization {canonicalization!r}")


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def public_key_from_b64(public_key_b64: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
    except ValueError as exc:  # binascii.Error is a ValueError too
        raise VerificationError(f"not an Ed25519 public key: {exc}") from exc


@dataclass(frozen=True)
class SigningKeyEntry:
    """One line of the key history: a public key and when it signed reports."""

    public_key: Ed25519PublicKey
    valid_from: datetime | None
    valid_until: datetime | None  # None: the current key
    current: bool

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def info(self) -> dict[str, Any]:
        pem = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        return {
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
            "public_key": base64.b64encode(_raw_public(self.public_key)).decode(),
            "public_key_pem": pem,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "current": self.current,
        }


class ReportSigner:
    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        *,
        valid_from: datetime | None = None,
        previous: Iterable[PreviousSigningKey] = (),
    ) -> None:
        self._private = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)
        current = SigningKeyEntry(self.public_key, valid_from, None, current=True)
        history = [
            SigningKeyEntry(public_key_from_b64(p.public_key), p.valid_from, p.valid_until, False)
            for p in previous
        ]
        # Newest first; the current key wins if it is also listed as a previous one.
        history.sort(key=lambda e: e.valid_until or datetime.max, reverse=True)
        self.keys: dict[str, SigningKeyEntry] = {current.key_id: current}
        for entry in history:
            self.keys.setdefault(entry.key_id, entry)

    @classmethod
    def from_config(
        cls,
        key_b64: str,
        key_file: str,
        *,
        valid_from: datetime | None = None,
        previous: Iterable[PreviousSigningKey] = (),
    ) -> ReportSigner:
        """The key from configuration; else from ``key_file``, created there on first use (dev)."""
        if key_b64:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(key_b64))
            return cls(key, valid_from=valid_from, previous=previous)
        path = Path(key_file)
        if path.exists():
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text()))
            return cls(key, valid_from=valid_from, previous=previous)
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written 0600 from the start: the key never exists world-readable.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(private_key_b64(key))
        return cls(key, valid_from=valid_from, previous=previous)

    def public_key_info(self) -> dict[str, Any]:
        """The current key (``GET /v1/reports/public-key``)."""
        return self.keys[self.key_id].info()

    def public_keys(self) -> list[dict[str, Any]]:
        """Every key that signed reports, current first (``GET /v1/reports/public-keys``)."""
        return [entry.info() for entry in self.keys.values()]

    def verification_keys(self) -> dict[str, str]:
        return {key_id: entry.info()["public_key"] for key_id, entry in self.keys.items()}

    def sign(self, report: dict[str, Any]) -> dict[str, Any]:
        """Return the report with its ``signature`` member set."""
        try:
            signature = self._private.sign(canonical_bytes(report))
        except CanonicalizationError as exc:
            raise ValueError(f"the report is not canonical JSON: {exc}") from exc
        return {
            **{k: v for k, v in report.items() if k != "signature"},
            "signature": {
                "algorithm": ALGORITHM,
                "canonicalization": CANONICALIZATION,
                "key_id": self.key_id,
                "value": base64.b64encode(signature).decode(),
            },
        }


def private_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


class VerificationError(Exception):
    pass


def verify_report(report: dict[str, Any], public_key_b64: str) -> None:
    """Raise :class:`VerificationError` with the reason unless the signature is authentic."""
    sig = report.get("signature")
    if not isinstance(sig, dict) or not isinstance(sig.get("value"), str):
        raise VerificationError("the report has no signature")
    if sig.get("algorithm") != ALGORITHM:
        raise VerificationError(f"unsupported signature algorithm {sig.get('algorithm')!r}")
    canonicalization = sig.get("canonicalization")
    if canonicalization not in (CANONICALIZATION, LEGACY_CANONICALIZATION):
        raise VerificationError(f"unsupported canonicalization {canonicalization!r}")
    public_key = public_key_from_b64(public_key_b64)
    if sig.get("key_id") != key_id_of(public_key):
        raise VerificationError("signed with another key (key_id differs)")
    try:
        signed = canonical_bytes(report, canonicalization)
    except CanonicalizationError as exc:
        raise VerificationError(f"the report is not canonical JSON: {exc}") from exc
    try:
        public_key.verify(base64.b64decode(sig["value"]), signed)
    except (InvalidSignature, ValueError) as exc:
        raise VerificationError(
            "signature does not match the content: the report was altered"
        ) from exc


def verify_report_with_keys(report: dict[str, Any], keys: Mapping[str, str]) -> str:
    """Verify with the key the report names (``keys`` maps key ids to base64 public keys, as
    ``GET /v1/reports/public-keys`` lists them); returns that key id."""
    sig = report.get("signature")
    key_id = sig.get("key_id") if isinstance(sig, dict) else None
    if not isinstance(key_id, str):
        raise VerificationError("the report has no signature")
    if key_id not in keys:
        raise VerificationError(f"signed with key {key_id}, which is not one of the known keys")
    verify_report(report, keys[key_id])
    return key_id
