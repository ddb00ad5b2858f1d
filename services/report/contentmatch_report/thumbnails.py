"""Small JPEG thumbnails of an upload and the work it matched, for a person to compare.

CPU-bound (decode, resize, encode): callers run :func:`make_thumbnail` in a thread. The output is
deterministic for the same input bytes, so a replayed match stores the same picture (and the same
sha256 in the signed report).
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw, ImageOps

THUMBNAIL_PX = 320
JPEG_QUALITY = 82
REGION_COLOUR = (230, 40, 40)
# Refuse absurd images (decompression bombs): a report without a picture is still a report.
MAX_PIXELS = 80_000_000


class ThumbnailError(Exception):
    """The bytes are not an image this service can decode."""


def normalised_region(value: Any) -> tuple[float, float, float, float] | None:
    """``{x, y, w, h}`` in 0..1 as a clipped tuple, or None when absent or malformed."""
    if not isinstance(value, dict):
        return None
    try:
        x, y, w, h = (float(value[k]) for k in ("x", "y", "w", "h"))
    except (KeyError, TypeError, ValueError):
        return None
    x0, y0 = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    x1, y1 = min(max(x + w, 0.0), 1.0), min(max(y + h, 0.0), 1.0)
    if x1 - x0 <= 0.0 or y1 - y0 <= 0.0:
        return None
    # A region covering (nearly) all of the picture says nothing: don't draw it.
    if x1 - x0 > 0.98 and y1 - y0 > 0.98:
        return None
    return x0, y0, x1, y1


def make_thumbnail(data: bytes, region: Any = None, size: int = THUMBNAIL_PX) -> bytes:
    """A JPEG at most ``size`` px on its longer side, with ``region`` outlined when given."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ThumbnailError(f"image of {img.width}x{img.height} px is too large")
            # JPEG decodes at 1/2, 1/4 or 1/8 scale for free: far less work for big photos.
            img.draft("RGB", (size * 2, size * 2))
            img = ImageOps.exif_transpose(img) or img
            picture = img.convert("RGB")
    except ThumbnailError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ThumbnailError(f"cannot decode the image: {exc}") from exc
    picture.thumbnail((size, size), Image.Resampling.LANCZOS)
    box = normalised_region(region)
    if box is not None:
        w, h = picture.size
        x0, y0, x1, y1 = box
        draw = ImageDraw.Draw(picture)
        width = max(2, round(min(w, h) / 80))
        draw.rectangle(
            (round(x0 * (w - 1)), round(y0 * (h - 1)), round(x1 * (w - 1)), round(y1 * (h - 1))),
            outline=REGION_COLOUR,
            width=width,
        )
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
