"""EXIF fields that name the software that made a file: ``Software`` and ``UserComment`` (where
AUTOMATIC1111 writes its generation parameters in JPEG and WebP), read with Pillow's EXIF parser
without decoding any pixels. A PNG's ``eXIf`` chunk comes from :mod:`png_chunks` (Pillow only
reads it before the image data)."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from struct import error as struct_error

from PIL import Image, UnidentifiedImageError

from contentmatch_fingerprint.signals.provenance.png_chunks import PNG_SIGNATURE

MAX_FIELD_CHARS = 64 * 1024
SOFTWARE = 0x0131
IMAGE_DESCRIPTION = 0x010E
MAKE = 0x010F
MODEL = 0x0110
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286

_CHARSETS = {b"ASCII\x00\x00\x00": "ascii", b"JIS\x00\x00\x00\x00\x00": "shift_jis"}


@dataclass(frozen=True)
class ExifFacts:
    software: str | None = None
    user_comment: str | None = None
    make: str | None = None
    model: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.software or self.user_comment)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 \t\r\n")[:MAX_FIELD_CHARS]
    return value or None


def decode_user_comment(raw: object) -> str | None:
    """``UserComment``: an 8-byte character code, then the text (UTF-16 for ``UNICODE``, in
    either byte order: writers disagree)."""
    if isinstance(raw, str):
        return _text(raw)
    if not isinstance(raw, bytes) or len(raw) < 8:
        return None
    code, body = raw[:8], raw[8 : 8 + 2 * MAX_FIELD_CHARS]
    if code == b"UNICODE\x00":
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            return _text(body.decode("utf-16", "replace"))
        big_endian = len(body) >= 2 and body[0] == 0 and body[1] != 0
        return _text(body.decode("utf-16-be" if big_endian else "utf-16-le", "replace"))
    return _text(body.decode(_CHARSETS.get(code, "utf-8"), "replace"))


def _facts(exif: Image.Exif) -> ExifFacts:
    comment = None
    with contextlib.suppress(Exception):  # a broken sub-IFD leaves the main one readable
        comment = decode_user_comment(exif.get_ifd(EXIF_IFD).get(USER_COMMENT))
    return ExifFacts(
        software=_text(exif.get(SOFTWARE)),
        user_comment=comment,
        make=_text(exif.get(MAKE)),
        model=_text(exif.get(MODEL)),
    )


def read_exif_block(block: bytes) -> ExifFacts:
    """Facts of a raw EXIF block (TIFF header first, or ``Exif\\0\\0`` then it)."""
    exif = Image.Exif()
    try:
        exif.load(block)
    except (SyntaxError, ValueError, OSError, EOFError, KeyError, IndexError, struct_error):
        return ExifFacts()
    return _facts(exif)


def read_exif(data: bytes) -> ExifFacts:
    """Facts of the EXIF Pillow finds when it opens ``data`` (headers only), or none. Not for
    PNG: Pillow decodes the pixels to look for an ``eXIf`` chunk (use :func:`read_exif_block`
    on :mod:`png_chunks`' find)."""
    if data[:8] == PNG_SIGNATURE:
        return ExifFacts()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return _facts(im.getexif())
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        SyntaxError,
        ValueError,
        OSError,
        EOFError,
        KeyError,
        IndexError,
        TypeError,
        struct_error,
    ):
        return ExifFacts()
