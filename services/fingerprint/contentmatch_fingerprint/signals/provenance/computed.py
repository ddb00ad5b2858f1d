"""Fingerprint readers (registered in ``FINGERPRINT_READERS``): evidence from what the signals
computed, on trusted numbers: the ISCC content code (image: ``extra["iscc"]``, computed with the
image signals; audio: from the Chromaprint items) and the Stable Diffusion watermark
(``extra["watermark"]``, see ``pixels``)."""

from __future__ import annotations

import base64

import numpy as np

from contentmatch_fingerprint.signals.provenance import iscc
from contentmatch_shared.fingerprints import AudioFingerprint, ImageFingerprint
from contentmatch_shared.provenance import ProvenanceEvidence

MAX_MARKS = 2


def _audio_items(fingerprint: AudioFingerprint) -> np.ndarray:
    """The Chromaprint items (``AudioFingerprint.chromaprint``: base64 of little-endian uint32)."""
    return np.frombuffer(base64.b64decode(fingerprint.chromaprint), dtype="<u4")


def read_iscc(fingerprint: ImageFingerprint | AudioFingerprint) -> list[ProvenanceEvidence]:
    if isinstance(fingerprint, ImageFingerprint):
        code = fingerprint.extra.get("iscc")
        if not isinstance(code, str):
            return []
        what = "Image-Code"
    else:
        code = iscc.audio_code(_audio_items(fingerprint))
        what = "Audio-Code"
    return [
        ProvenanceEvidence(
            source="iscc",
            kind="identifier",
            strength="supporting",
            summary=f"ISCC {what} {code} (computed from the content)",
            identifiers={"iscc": code},
            details={"computed": True},
        )
    ]


def read_watermark(fingerprint: ImageFingerprint | AudioFingerprint) -> list[ProvenanceEvidence]:
    marks = (
        fingerprint.extra.get("watermark") if isinstance(fingerprint, ImageFingerprint) else None
    )
    if not isinstance(marks, list):
        return []
    out = []
    for mark in marks[:MAX_MARKS]:
        if not isinstance(mark, dict):
            continue
        out.append(
            ProvenanceEvidence(
                source="watermark",
                kind="ai_generated",
                strength="supporting",
                summary=(
                    f"Invisible watermark of {mark.get('ai_system')} ({mark.get('mark')}): "
                    f"{mark.get('agreement')} of {mark.get('n_bits')} bits, chance "
                    f"{float(mark.get('chance', 1.0)):.0e} on an unmarked image"
                ),
                ai_system=str(mark.get("ai_system")),
                details={k: mark[k] for k in sorted(mark) if k != "ai_system"},
            )
        )
    return out
