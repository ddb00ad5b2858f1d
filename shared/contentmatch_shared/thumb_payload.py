"""The wire format of the thumbnail inside ``ImageFingerprint.extra["thumb"]``.

The thumbnail is what dense verification compares once a candidate has been aligned (by the
global hashes: identity, mirror or trimmed border; by ORB: a similarity transform): grey levels
at up to ``THUMB_SIDE`` px for structure, and the two chroma planes (YCbCr) at up to
``CHROMA_SIDE`` px for colour, which grey structure cannot see (tricolour flags, recoloured
icons). Written by the fingerprint service, read by the match index; both use this definition.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

THUMB_SIDE = 128  # longest side of the grey thumbnail (at most 16 KB before base64)
CHROMA_SIDE = 32  # longest side of the chroma planes (at most 2 KB before base64)


def encode_thumb(grey: np.ndarray, chroma: np.ndarray | None = None) -> dict[str, Any]:
    """Grey (h x w uint8) and optional chroma (h' x w' x 2 uint8, Cb/Cr, 128 = neutral)."""
    a = np.ascontiguousarray(grey, dtype=np.uint8)
    if a.ndim != 2:
        raise ValueError("thumbnail must be a 2-D grey array")
    h, w = a.shape
    out: dict[str, Any] = {"v": 1, "w": int(w), "h": int(h), "px": base64.b64encode(a).decode()}
    if chroma is not None:
        c = np.ascontiguousarray(chroma, dtype=np.uint8)
        if c.ndim != 3 or c.shape[2] != 2:
            raise ValueError("chroma must be h x w x 2")
        out["cw"], out["ch"] = int(c.shape[1]), int(c.shape[0])
        out["cbcr"] = base64.b64encode(c).decode()
    return out


def decode_thumb(thumb: dict[str, Any]) -> np.ndarray:
    """The grey thumbnail as a (height x width) uint8 array; ValueError when it is bad."""
    w, h = int(thumb["w"]), int(thumb["h"])
    raw = base64.b64decode(thumb["px"])
    if w <= 0 or h <= 0 or len(raw) != w * h:
        raise ValueError(f"thumbnail payload: {len(raw)} bytes for {w}x{h}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(h, w)


def decode_chroma(thumb: dict[str, Any]) -> np.ndarray | None:
    """The chroma planes as (height x width x 2) uint8, or None when absent or bad."""
    try:
        w, h = int(thumb["cw"]), int(thumb["ch"])
        raw = base64.b64decode(thumb["cbcr"])
    except (KeyError, TypeError, ValueError):
        return None
    if w <= 0 or h <= 0 or len(raw) != w * h * 2:
        return None
    return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 2)
