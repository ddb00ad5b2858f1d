"""Provenance computed from the decoded picture while the image signals have it: the ISCC
Image-Code and the Stable Diffusion watermark (``ImageFingerprint.extra["iscc"]`` and
``extra["watermark"]``). Done here, not by a reader of the bytes, so no image is decoded twice;
the fingerprint readers (``computed``) turn them into evidence."""

from __future__ import annotations

import logging

from PIL import Image

from contentmatch_fingerprint.signals.provenance import iscc, watermark
from contentmatch_shared.thumb_payload import decode_thumb

log = logging.getLogger(__name__)


def pixel_provenance(
    data: bytes, rgb: Image.Image, width: int, height: int, thumb: object = None
) -> dict[str, object]:
    """``extra`` entries for the upright working copy ``rgb`` of ``data`` (``width`` x
    ``height`` at full size) and its grey thumbnail payload ``thumb``. The watermark is looked
    for only in a lossless file decoded at full size (the mark lives in the exact pixels).
    Never raises: the image's signals do not depend on its provenance."""
    out: dict[str, object] = {}
    try:
        if isinstance(thumb, dict):
            out["iscc"] = iscc.image_code_of_grey(decode_thumb(thumb))
        else:
            out["iscc"] = iscc.image_code(rgb)
    except Exception as exc:
        log.warning("ISCC image code failed: %s", exc)
    if rgb.size != (width, height) or not watermark.lossless_format(data):
        return out
    if not watermark.MIN_PIXELS <= width * height <= watermark.MAX_PIXELS:
        return out
    try:
        marks = watermark.find_marks(rgb)
    except Exception as exc:
        log.warning("watermark decode failed: %s", exc)
        return out
    if marks:
        out["watermark"] = [
            {
                "mark": m.mark,
                "ai_system": m.ai_system,
                "channel_order": m.channel_order,
                "agreement": m.agreement,
                "n_bits": m.n_bits,
                "threshold": m.threshold,
                "chance": m.chance,
            }
            for m in marks
        ]
    return out
