"""Fingerprint payloads: what the fingerprint service computes and the match service indexes.

One model per media type; they travel inside events (``uploads.fingerprinted``, ``works.registry``),
so changes are additive only.
"""

from __future__ import annotations

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
