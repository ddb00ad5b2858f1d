"""Image signals: safe decoding, global perceptual hashes and ORB local features.

``fingerprint_image(bytes) -> ImageFingerprint`` is a top-level, picklable function meant to run
in a ``ProcessPoolExecutor``. What it computes (the match service's ``ImageIndex`` reads it):

``hashes`` (canonical, what a registered work is indexed under)
    ``phash``  64-bit DCT hash (imagehash), 16 hex chars
    ``dhash``  64-bit gradient hash (imagehash), 16 hex chars
    ``pdq``    256-bit PDQ hash (Meta, ``pdqhash``), 64 hex chars

``extra`` (query-side variants and the second tier)
    ``pdq_quality``  PDQ quality 0..100 (low = flat image, hash is unreliable)
    ``variants``     name -> hex for cheap variants used when the image is a *query*:
                     ``phash_mirror``/``dhash_mirror`` (hash of the horizontally mirrored image),
                     ``pdq_dihedral`` (the 8 PDQ rotations/mirrors, comma separated),
                     ``phash_trim``/``dhash_trim``/``pdq_trim`` (hashes after trimming a uniform
                     border, present only when a border was found), ``trim_box`` ([x, y, w, h]
                     normalised)
    ``thumb``        grey thumbnail, at most ``THUMB_SIDE`` px long (area-averaged), and Cb/Cr
                     planes at most ``CHROMA_SIDE`` px long, for dense verification of aligned
                     candidates: ``{"v": 1, "w", "h", "px": b64, "cw", "ch", "cbcr": b64}``
    ``orb``          ORB keypoints of a copy scaled to ``ORB_SIDE`` px on its longest side:
                     ``{"v": 1, "w", "h", "n", "desc": b64(n x 32 uint8),
                     "kp": b64(n x 2 uint16, x/w and y/h scaled to 0..65535)}``

A typical payload is 30-40 KB of JSON, dominated by the ORB descriptors (500 x 32 bytes) and
the thumbnail (at most 128 x 128 bytes).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import warnings
from struct import error as struct_error

import cv2
import imagehash
import numpy as np
import pdqhash
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from contentmatch_fingerprint.signals.provenance.pixels import pixel_provenance
from contentmatch_shared.decode_limits import (
    EXIF_TRANSPOSE,
    STRIP_THRESHOLD_PIXELS,
    DecodeLimits,
    opened_image_budget,
    reduce_in_strips,
)
from contentmatch_shared.decode_sandbox import admit
from contentmatch_shared.errors import MediaError
from contentmatch_shared.fingerprints import ImageFingerprint
from contentmatch_shared.settings import get_settings
from contentmatch_shared.thumb_payload import CHROMA_SIDE, THUMB_SIDE, encode_thumb

MAX_PIXELS = 80_000_000  # decompression-bomb guard: refuse more than 80 megapixels
MIN_SIDE = 16  # smaller images carry no usable signal
WORK_SIDE = 1024  # decode/reduce to at most this many px on the longest side
PDQ_SIDE = 512  # PDQ's reference implementation hashes a <= 512 px copy
ORB_SIDE = 640  # local features are extracted on a copy this long on its longest side
ORB_MIN_SIDE = 320  # ... and at least this long (small images are enlarged)
ORB_FEATURES = 500  # keypoints kept per image (descriptor payload = 32 B each)
ORB_DETECT = 2000  # candidates detected before spreading them over the image
ORB_GRID = 4  # 4 x 4 cells, ORB_FEATURES // 16 strongest per cell first
ORB_FAST = 7  # FAST corner threshold (grey levels) ...
ORB_FAST_LOW = 2  # ... lowered when it finds fewer than ORB_FEATURES corners (icons, smooth
# photos, a crop of one: 20-50 keypoints at 7, 150-300 at 2)
TRIM_MIN_FRACTION = 0.03  # a border thinner than 3 % of a side is not trimmed

# Pillow's own guard raises DecompressionBombError at 2x this; we refuse above it ourselves.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

_orbs: dict[int, object] = {}


def _get_orb(fast_threshold: int = ORB_FAST):
    orb = _orbs.get(fast_threshold)
    if orb is None:
        cv2.setNumThreads(1)  # the process pool gives parallelism; avoid oversubscription
        orb = _orbs[fast_threshold] = cv2.ORB_create(
            nfeatures=ORB_DETECT,
            scaleFactor=1.2,
            nlevels=8,
            edgeThreshold=19,
            patchSize=19,
            fastThreshold=fast_threshold,
        )
    return orb


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_image(data: bytes, max_side: int = WORK_SIDE) -> tuple[Image.Image, int, int]:
    """Decode to RGB, upright, at most ``max_side`` px long. Returns (image, width, height)
    where width/height are the full-resolution upright dimensions.

    The decode's budget is computed from the headers first (``decode_limits``) and, in the
    decoding sandbox, enforced; a large image is converted and reduced strip by strip, so no full
    size copy is made besides the decoded image itself.

    Raises MediaError ``undecodable_image``, ``image_too_large`` or ``image_too_small``.
    """
    if not data:
        raise MediaError("undecodable_image", "empty payload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise MediaError(
                    "image_too_large",
                    f"{w}x{h} = {w * h / 1e6:.0f} megapixels exceeds {MAX_PIXELS / 1e6:.0f}",
                )
            if min(w, h) < MIN_SIDE:
                raise MediaError("image_too_small", f"{w}x{h} is smaller than {MIN_SIDE} px")
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            if im.format == "JPEG":
                # Decode at 1/2, 1/4 or 1/8 scale in the DCT domain when the image is large.
                mode = "RGB" if im.mode in ("RGB", "YCbCr", "L") else im.mode
                im.draft(mode if im.mode != "L" else "L", (max_side, max_side))
            admit(opened_image_budget(im, (w, h), DecodeLimits.from_settings(get_settings())))
            orientation = 1
            with contextlib.suppress(Exception):  # a broken EXIF block is not fatal
                # (after admit: a PNG's EXIF may follow its pixels, so reading it decodes them)
                orientation = int(im.getexif().get(0x0112, 1) or 1)
            im.load()
            factor = int(max(im.size) / max_side)
            if im.size[0] * im.size[1] > STRIP_THRESHOLD_PIXELS and factor >= 2:
                # Converted and reduced strip by strip, then turned upright (small by then).
                rgb = reduce_in_strips(im, factor, functools.partial(_to_rgb, extrema=_range(im)))
                del im
                if orientation in EXIF_TRANSPOSE:
                    rgb = rgb.transpose(EXIF_TRANSPOSE[orientation])
            else:
                if orientation != 1:
                    im = ImageOps.exif_transpose(im)
                rgb = _to_rgb(im)
            if orientation in (5, 6, 7, 8):
                w, h = h, w
    except MediaError:
        raise
    except Image.DecompressionBombError as e:
        raise MediaError("image_too_large", str(e)) from None
    except UnidentifiedImageError:
        # Pillow's message names its in-memory buffer object, which means nothing to a client.
        raise MediaError(
            "undecodable_image", "not an image in a format this service reads"
        ) from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        TypeError,
        KeyError,
        IndexError,
        struct_error,
    ) as e:
        raise MediaError("undecodable_image", f"cannot decode image: {e}") from None
    if max(rgb.size) > max_side:
        f = max(rgb.size) / max_side
        if f >= 2:
            rgb = rgb.reduce(int(f))  # cheap box reduction first
        if max(rgb.size) > max_side:
            rgb.thumbnail((max_side, max_side), Image.BILINEAR, reducing_gap=None)
    return rgb, w, h


_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _range(im: Image.Image) -> tuple[float, float] | None:
    """(min, max) of a 16/32-bit image, which _to_rgb scales by; None for other modes."""
    if im.mode not in _WIDE_MODES:
        return None
    lo, hi = im.getextrema()
    return float(lo), float(hi)


def _to_rgb(im: Image.Image, extrema: tuple[float, float] | None = None) -> Image.Image:
    """Any Pillow mode to RGB: alpha/palette composited onto white, CMYK and 16-bit handled.

    16/32-bit images are scaled by ``extrema`` (the whole image's, when converting a part)."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in _WIDE_MODES:
        a = np.asarray(im, dtype=np.float64)
        lo, hi = extrema if extrema is not None else (float(a.min()), float(a.max()))
        if mode.startswith("I;16") and hi > 255:
            a = a / 257.0
        elif hi > 255 or lo < 0 or mode == "F":
            a = (a - lo) * (255.0 / max(hi - lo, 1e-9))
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
        if mode == "RGB":
            return im
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if mode == "1":
        return im.convert("L").convert("RGB")
    return im.convert("RGB")  # L, CMYK, YCbCr, LAB, HSV


# ---------------------------------------------------------------------------------------------
# Global hashes


def _hex_bits(bits: np.ndarray) -> str:
    """Bit array (MSB first) to hex."""
    return np.packbits(np.asarray(bits, dtype=np.uint8).ravel()).tobytes().hex()


def _ihash_hex(h: imagehash.ImageHash) -> str:
    return _hex_bits(h.hash)


def _resize_max(im: Image.Image, side: int) -> Image.Image:
    if max(im.size) <= side:
        return im
    out = im.copy()
    out.thumbnail((side, side), Image.BILINEAR)
    return out


def _pdq(rgb: Image.Image) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.ascontiguousarray(np.asarray(_resize_max(rgb, PDQ_SIDE))))
    return _hex_bits(bits), int(quality)


def _pdq_dihedral(rgb: Image.Image) -> tuple[list[str], int]:
    """The 8 PDQ hashes (original first, then rotations/mirrors) and the quality."""
    hashes, quality = pdqhash.compute_dihedral(
        np.ascontiguousarray(np.asarray(_resize_max(rgb, PDQ_SIDE)))
    )
    return [_hex_bits(b) for b in hashes], int(quality)


def find_trim_box(rgb: Image.Image, tol: float = 10.0) -> tuple[int, int, int, int] | None:
    """Box (left, top, right, bottom) inside a uniform border, or None when there is none.

    A border row/column is one whose pixels all lie within ``tol`` of the corner colour
    (per channel, on a small copy). Borders thinner than ``TRIM_MIN_FRACTION`` are ignored.
    """
    small = _resize_max(rgb, 160)
    a = np.asarray(small, dtype=np.int16)
    sh, sw = a.shape[:2]
    corners = [a[0, 0], a[0, -1], a[-1, 0], a[-1, -1]]
    best = None
    for c in corners:
        diff = np.abs(a - c).max(axis=2) <= tol
        rows = diff.mean(axis=1) >= 0.98
        cols = diff.mean(axis=0) >= 0.98
        top = int(np.argmin(rows)) if not rows.all() else sh
        bottom = int(np.argmin(rows[::-1])) if not rows.all() else sh
        left = int(np.argmin(cols)) if not cols.all() else sw
        right = int(np.argmin(cols[::-1])) if not cols.all() else sw
        if top + bottom >= sh - 4 or left + right >= sw - 4:
            continue
        area = (sh - top - bottom) * (sw - left - right)
        if best is None or area < best[0]:
            best = (area, left, top, right, bottom)
    if best is None:
        return None
    _, left, top, right, bottom = best
    if max(left, right) < TRIM_MIN_FRACTION * sw and max(top, bottom) < TRIM_MIN_FRACTION * sh:
        return None
    fx, fy = rgb.size[0] / sw, rgb.size[1] / sh
    # Trim one extra small-pixel inwards to drop the anti-aliased edge.
    x0 = (left + (1 if left else 0)) * fx
    y0 = (top + (1 if top else 0)) * fy
    x1 = rgb.size[0] - (right + (1 if right else 0)) * fx
    y1 = rgb.size[1] - (bottom + (1 if bottom else 0)) * fy
    return (round(x0), round(y0), round(x1), round(y1))


# ---------------------------------------------------------------------------------------------
# Local features


def _spread(kps: list, shape: tuple[int, int], n: int, grid: int = ORB_GRID) -> list:
    """Keep ``n`` keypoints spread over a grid x grid partition of the image: the strongest ones
    of every cell first (so that a caption, a logo or one busy corner cannot take them all),
    then the strongest of the rest."""
    if len(kps) <= n:
        return kps
    h, w = shape
    resp = np.array([k.response for k in kps])
    cell = np.array(
        [
            min(int(k.pt[1] * grid / h), grid - 1) * grid + min(int(k.pt[0] * grid / w), grid - 1)
            for k in kps
        ]
    )
    order = np.lexsort((-resp, cell))
    rank = np.empty(len(kps), dtype=np.int64)
    sorted_cells = cell[order]
    starts = np.searchsorted(sorted_cells, sorted_cells, side="left")
    rank[order] = np.arange(len(kps)) - starts
    per_cell = max(1, n // (grid * grid))
    chosen = rank < per_cell
    rest = np.flatnonzero(~chosen)
    extra = n - int(chosen.sum())
    if extra > 0:
        chosen[rest[np.argsort(-resp[rest])[:extra]]] = True
    return [k for k, c in zip(kps, chosen, strict=True) if c]


def orb_features(rgb: Image.Image, nfeatures: int = ORB_FEATURES) -> dict | None:
    """ORB keypoints + descriptors of an ``ORB_SIDE`` copy, compactly encoded, or None.

    Small images (icons, a crop of one) are first enlarged to ``ORB_MIN_SIDE``: ORB's 19 px
    patches and border margin leave almost nothing to describe on an 80 px picture."""
    small = _resize_max(rgb, ORB_SIDE)
    if max(small.size) < ORB_MIN_SIDE:
        f = ORB_MIN_SIDE / max(small.size)
        small = small.resize(
            (max(1, round(small.size[0] * f)), max(1, round(small.size[1] * f))), Image.BICUBIC
        )
    gray = np.asarray(small.convert("L"))
    orb = _get_orb()
    kps = list(orb.detect(gray, None))
    if len(kps) < nfeatures:
        orb = _get_orb(ORB_FAST_LOW)
        kps = list(orb.detect(gray, None))
    kps = _spread(kps, gray.shape, nfeatures)
    if not kps:
        return None
    kps, desc = orb.compute(gray, kps)
    if desc is None or len(kps) == 0:
        return None
    h, w = gray.shape
    pts = np.array([kp.pt for kp in kps], dtype=np.float64)
    norm = np.empty((len(kps), 2), dtype="<u2")
    norm[:, 0] = np.clip(np.round(pts[:, 0] / w * 65535), 0, 65535)
    norm[:, 1] = np.clip(np.round(pts[:, 1] / h * 65535), 0, 65535)
    return {
        "v": 1,
        "w": int(w),
        "h": int(h),
        "n": len(kps),
        "desc": base64.b64encode(np.ascontiguousarray(desc, dtype=np.uint8).tobytes()).decode(),
        "kp": base64.b64encode(norm.tobytes()).decode(),
    }


def _area_resize(im: Image.Image, side: int) -> Image.Image:
    w, h = im.size
    f = max(w, h) / side
    if f <= 1:
        return im
    size = (max(1, round(w / f)), max(1, round(h / f)))
    return im.resize(size, Image.BOX, reducing_gap=None)


def grey_thumbnail(rgb: Image.Image, side: int = THUMB_SIDE) -> dict:
    """Area-averaged grey copy at most ``side`` px long (aspect kept) and the Cb/Cr planes at
    most ``CHROMA_SIDE`` px long, as a payload."""
    grey = _area_resize(rgb.convert("L"), side)
    ycc = np.asarray(_area_resize(rgb, CHROMA_SIDE).convert("YCbCr"))
    return encode_thumb(np.asarray(grey), ycc[:, :, 1:])


# ---------------------------------------------------------------------------------------------
# Entry point


class ImageHasher:
    """Computes every image signal; ``fingerprint_image`` uses one per worker process."""

    def __init__(self, orb: bool = True) -> None:
        self.orb = orb

    def fingerprint(self, data: bytes) -> ImageFingerprint:
        rgb, width, height = decode_image(data)
        fingerprint = self.fingerprint_rgb(rgb, width, height)
        thumb = fingerprint.extra.get("thumb")
        fingerprint.extra.update(pixel_provenance(data, rgb, width, height, thumb))
        return fingerprint

    def fingerprint_rgb(
        self, rgb: Image.Image, width: int | None = None, height: int | None = None
    ) -> ImageFingerprint:
        width = width or rgb.size[0]
        height = height or rgb.size[1]
        # pHash/dHash on a <= 512 px copy: imagehash downsizes to 32x32 / 9x8 anyway.
        hsmall = _resize_max(rgb, PDQ_SIDE)
        mirrored = hsmall.transpose(Image.FLIP_LEFT_RIGHT)
        dihedral, quality = _pdq_dihedral(hsmall)
        pdq_hex = dihedral[0]
        hashes = {
            "phash": _ihash_hex(imagehash.phash(hsmall)),
            "dhash": _ihash_hex(imagehash.dhash(hsmall)),
            "pdq": pdq_hex,
        }
        variants: dict[str, object] = {
            "phash_mirror": _ihash_hex(imagehash.phash(mirrored)),
            "dhash_mirror": _ihash_hex(imagehash.dhash(mirrored)),
            "pdq_dihedral": ",".join(dihedral),
        }
        box = find_trim_box(rgb)
        if box is not None:
            trimmed = _resize_max(rgb.crop(box), PDQ_SIDE)
            variants["phash_trim"] = _ihash_hex(imagehash.phash(trimmed))
            variants["dhash_trim"] = _ihash_hex(imagehash.dhash(trimmed))
            variants["pdq_trim"] = _pdq(trimmed)[0]
            W, H = rgb.size
            variants["trim_box"] = [
                round(box[0] / W, 4),
                round(box[1] / H, 4),
                round((box[2] - box[0]) / W, 4),
                round((box[3] - box[1]) / H, 4),
            ]
        extra: dict[str, object] = {
            "pdq_quality": quality,
            "variants": variants,
            "thumb": grey_thumbnail(rgb),
        }
        if self.orb:
            feats = orb_features(rgb)
            if feats is not None:
                extra["orb"] = feats
        return ImageFingerprint(width=width, height=height, hashes=hashes, extra=extra)


_hasher: ImageHasher | None = None


def fingerprint_image(data: bytes) -> ImageFingerprint:
    """Fingerprint encoded image bytes (any format Pillow reads). Picklable, process-safe.

    Raises MediaError: ``undecodable_image``, ``image_too_large``, ``image_too_small``.
    """
    global _hasher
    if _hasher is None:
        _hasher = ImageHasher()
    return _hasher.fingerprint(data)
