"""Small JPEG thumbnails of an upload and the work it matched, for a person to compare.

CPU-bound (decode, resize, encode) and a parser of untrusted bytes: callers run
:func:`make_thumbnail` in the decoding sandbox (``contentmatch_shared.decode_sandbox``), whose
limits for this service come from ``CM_REPORT_DECODE_MEMORY_MB`` (an image that needs more to
decode gets no thumbnail). The output is deterministic for the same input bytes, so a replayed
match stores the same picture (and the same sha256 in the signed report).
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw, ImageOps

from contentmatch_shared.decode_limits import (
    EXIF_TRANSPOSE,
    STRIP_THRESHOLD_PIXELS,
    DecodeLimits,
    opened_image_budget,
    reduce_in_strips,
)
from contentmatch_shared.decode_sandbox import admit
from contentmatch_shared.errors import MediaError
from contentmatch_shared.settings import get_settings

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


def warm_up() -> None:
    """Load every Pillow format plugin before the first job (jobs run under a memory ceiling)."""
    Image.init()


def _limits() -> DecodeLimits:
    return DecodeLimits.from_settings(get_settings(), "report")


def _rgb(img: Image.Image) -> Image.Image:
    return img.convert("RGB")


def make_thumbnail(data: bytes, region: Any = None, size: int = THUMBNAIL_PX) -> bytes:
    """A JPEG at most ``size`` px on its longer side, with ``region`` outlined when given."""
    return _outlined_jpeg(_reduced(data, size), region)


def make_base_thumbnail(data: bytes, size: int = THUMBNAIL_PX) -> bytes:
    """The picture :func:`make_thumbnail` outlines, as a lossless PNG: made once per registered
    work, then outlined per report by :func:`thumbnail_from_base` (the same JPEG bytes)."""
    out = io.BytesIO()
    _reduced(data, size).save(out, "PNG", compress_level=1)
    return out.getvalue()


def thumbnail_from_base(png: bytes, region: Any = None, size: int = THUMBNAIL_PX) -> bytes:
    """:func:`make_thumbnail` of the original, from its :func:`make_base_thumbnail`. The PNG is
    this service's own output (stored beside the reports), checked to be that small."""
    try:
        with Image.open(io.BytesIO(png)) as img:
            if img.format != "PNG" or max(img.size) > size or img.mode != "RGB":
                raise ThumbnailError(f"not a base thumbnail: {img.format} {img.mode} {img.size}")
            picture = img.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ThumbnailError(f"cannot decode the base thumbnail: {exc}") from exc
    return _outlined_jpeg(picture, region)


def _reduced(data: bytes, size: int) -> Image.Image:
    """The image upright, in RGB, at most ``size`` px on its longer side."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ThumbnailError(f"image of {img.width}x{img.height} px is too large")
            full_size = img.size
            # JPEG decodes at 1/2, 1/4 or 1/8 scale for free: far less work for big photos.
            img.draft("RGB", (size * 2, size * 2))
            try:
                admit(opened_image_budget(img, full_size, _limits()))
            except MediaError as exc:
                raise ThumbnailError(exc.message) from None
            factor = int(max(img.size) / (size * 2))
            if img.width * img.height > STRIP_THRESHOLD_PIXELS and factor >= 2:
                # No full-size copy: converted and reduced strip by strip, turned upright after.
                img.load()
                orientation = img.getexif().get(0x0112, 1)
                picture = reduce_in_strips(img, factor, _rgb)
                transpose = EXIF_TRANSPOSE.get(orientation)
                if transpose is not None:
                    picture = picture.transpose(transpose)
            else:
                img = ImageOps.exif_transpose(img) or img
                picture = img.convert("RGB")
    except ThumbnailError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ThumbnailError(f"cannot decode the image: {exc}") from exc
    picture.thumbnail((size, size), Image.Resampling.LANCZOS)
    return picture


def _outlined_jpeg(picture: Image.Image, region: Any) -> bytes:
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
