"""PNG text chunks walked from the bytes: ``tEXt``, ``zTXt`` and ``iTXt`` wherever they are,
including after the image data (Pillow only sees those once it has decoded the pixels), and the
``eXIf`` chunk.

Every length is checked against the bytes left, compressed text is inflated with a ceiling
(``MAX_TEXT_BYTES`` per chunk, ``MAX_TOTAL_TEXT_BYTES`` per file) and the walk stops after
``MAX_CHUNKS`` chunks, so a hostile file costs at most one pass over its bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_CHUNKS = 100_000
MAX_TEXT_CHUNKS = 64
MAX_TEXT_BYTES = 1 << 20  # one chunk's text, inflated
MAX_TOTAL_TEXT_BYTES = 4 << 20
MAX_EXIF_BYTES = 1 << 20
XMP_KEYWORD = "XML:com.adobe.xmp"


@dataclass(frozen=True)
class TextChunk:
    """One text chunk: keyword, text, and whether it follows the image data."""

    keyword: str
    text: str
    chunk_type: str  # tEXt, zTXt or iTXt
    after_image_data: bool
    truncated: bool = False  # inflated text beyond the ceiling was dropped


@dataclass
class PngChunks:
    texts: list[TextChunk] = field(default_factory=list)
    exif: bytes | None = None
    problems: list[str] = field(default_factory=list)

    def text(self, keyword: str) -> TextChunk | None:
        for chunk in self.texts:
            if chunk.keyword == keyword:
                return chunk
        return None

    @property
    def xmp_packets(self) -> list[bytes]:
        return [c.text.encode("utf-8") for c in self.texts if c.keyword == XMP_KEYWORD]


def is_png(data: bytes) -> bool:
    return data[:8] == PNG_SIGNATURE


def _inflate(data: bytes, budget: int) -> tuple[bytes, bool]:
    """``data`` inflated to at most ``budget`` bytes; True when more was left."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, budget)
    return out, bool(inflater.unconsumed_tail)


def _latin1(raw: bytes) -> str:
    return raw.decode("latin-1")


def walk(data: bytes) -> PngChunks:
    """The text and EXIF chunks of a PNG (an empty result for other bytes)."""
    found = PngChunks()
    if not is_png(data):
        return found
    pos = len(PNG_SIGNATURE)
    seen_idat = False
    left = MAX_TOTAL_TEXT_BYTES
    for _ in range(MAX_CHUNKS):
        if pos + 8 > len(data):
            found.problems.append("the file ends before IEND")
            break
        length, ctype = struct.unpack_from(">I4s", data, pos)
        body_start = pos + 8
        body_end = body_start + length
        if body_end + 4 > len(data):
            found.problems.append(f"chunk {ctype!r} runs past the end of the file")
            break
        pos = body_end + 4  # the CRC (not checked: a reader of text, not a validator)
        if ctype == b"IDAT":
            seen_idat = True
        elif ctype == b"IEND":
            break
        elif ctype == b"eXIf" and found.exif is None and length <= MAX_EXIF_BYTES:
            found.exif = data[body_start:body_end]
        elif ctype in (b"tEXt", b"zTXt", b"iTXt") and len(found.texts) < MAX_TEXT_CHUNKS:
            budget = min(left, MAX_TEXT_BYTES)
            if budget <= 0:  # (a zero budget would mean "no limit" to zlib)
                found.problems.append("text chunks beyond the total ceiling were skipped")
                continue
            try:
                chunk = _text_chunk(ctype, data[body_start:body_end], seen_idat, budget)
            except (ValueError, zlib.error) as exc:
                found.problems.append(f"{ctype.decode()} chunk unreadable: {exc}")
                continue
            if chunk is not None:
                left -= len(chunk.text)
                found.texts.append(chunk)
    return found


def _text_chunk(ctype: bytes, body: bytes, after: bool, budget: int) -> TextChunk | None:
    keyword_raw, sep, rest = body.partition(b"\x00")
    if not sep or not 1 <= len(keyword_raw) <= 79:
        raise ValueError("no keyword")
    keyword = _latin1(keyword_raw)
    truncated = False
    if ctype == b"tEXt":
        raw = rest[:budget]
        truncated = len(rest) > budget
        text = _latin1(raw)
    elif ctype == b"zTXt":
        if not rest or rest[0] != 0:
            raise ValueError("unknown compression method")
        raw, truncated = _inflate(rest[1:], budget)
        text = _latin1(raw)
    else:  # iTXt: flag, method, language\0, translated keyword\0, UTF-8 text
        if len(rest) < 2:
            raise ValueError("truncated header")
        compressed, method = rest[0], rest[1]
        parts = rest[2:].split(b"\x00", 2)
        if len(parts) != 3:
            raise ValueError("truncated header")
        payload = parts[2]
        if compressed:
            if method != 0:
                raise ValueError("unknown compression method")
            raw, truncated = _inflate(payload, budget)
        else:
            raw, truncated = payload[:budget], len(payload) > budget
        text = raw.decode("utf-8", "replace")
    return TextChunk(keyword, text, ctype.decode(), after, truncated)
