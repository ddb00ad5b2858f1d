"""Fingerprint payloads: what the fingerprint service computes and the match service indexes.

One model per media type; they travel inside events (``uploads.fingerprinted``, ``works.registry``),
so changes are additive only.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Annotated, Literal

from pydantic import BaseModel, Field


class ImageFingerprint(BaseModel):
    """Signals of one image. ``hashes`` maps a global signal name (``phash``, ``pdq``...) to hex."""

    media_type: Literal["image"] = "image"
    width: int
    height: int
    hashes: dict[str, str]
    # Optional second-tier signals (local features, variants); each signal module owns its keys.
    extra: dict[str, object] = Field(default_factory=dict)


class AudioFingerprint(BaseModel):
    """Signals of one audio file: Chromaprint raw items (base64 of little-endian uint32)."""

    media_type: Literal["audio"] = "audio"
    duration_s: float
    chromaprint: str
    # Chromaprint items per second of audio (about 8.08 for the default algorithm).
    item_rate: float
    extra: dict[str, object] = Field(default_factory=dict)


Fingerprint = Annotated[ImageFingerprint | AudioFingerprint, Field(discriminator="media_type")]


# The image signals every indexed work carries, and their sizes in bytes (hex is twice that).
REQUIRED_IMAGE_HASHES = {"phash": 8, "pdq": 32}
OPTIONAL_IMAGE_HASHES = {"dhash": 8}


def _hex_problem(name: str, value: object, nbytes: int) -> str | None:
    if not isinstance(value, str):
        return f"hash {name!r} is not a string"
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return f"hash {name!r} is not hex"
    if len(raw) != nbytes:
        return f"hash {name!r} has {len(raw) * 8} bits, not {nbytes * 8}"
    return None


def indexable_problem(fingerprint: ImageFingerprint | AudioFingerprint) -> str | None:
    """Why the match index could not apply ``fingerprint``, or None when it can.

    Checked by fingerprint before it publishes a work to ``works.registry`` and by match's
    registry follower on read: one unappliable record must never stop the index.
    """
    if isinstance(fingerprint, ImageFingerprint):
        if fingerprint.width <= 0 or fingerprint.height <= 0:
            return f"image of {fingerprint.width}x{fingerprint.height} px"
        for name, nbytes in REQUIRED_IMAGE_HASHES.items():
            if name not in fingerprint.hashes:
                return f"no {name!r} hash"
            if problem := _hex_problem(name, fingerprint.hashes[name], nbytes):
                return problem
        for name, nbytes in OPTIONAL_IMAGE_HASHES.items():
            if fingerprint.hashes.get(name) and (
                problem := _hex_problem(name, fingerprint.hashes[name], nbytes)
            ):
                return problem
        return None
    if not (math.isfinite(fingerprint.duration_s) and fingerprint.duration_s > 0):
        return f"audio duration {fingerprint.duration_s!r}"
    if not (math.isfinite(fingerprint.item_rate) and fingerprint.item_rate > 0):
        return f"chromaprint item rate {fingerprint.item_rate!r}"
    try:
        items = base64.b64decode(fingerprint.chromaprint, validate=True)
    except (binascii.Error, ValueError):
        return "chromaprint is not base64"
    if not items or len(items) % 4:
        return f"chromaprint of {len(items)} bytes is not a whole number of 32-bit items"
    return None
