"""Media type detection from content (magic bytes), never from a file name or a client's claim."""

from __future__ import annotations

from typing import Literal, NamedTuple

SNIFF_BYTES = 64


class Sniffed(NamedTuple):
    media_type: Literal["image", "audio"]
    content_type: str


_IMAGE_BRANDS = {b"avif", b"avis", b"heic", b"heix", b"mif1"}


def sniff(head: bytes) -> Sniffed | None:
    """The media type of a file from its first bytes, or None when it is neither image nor audio."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "image/gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "image/webp")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("audio", "audio/wav")
    if head.startswith(b"BM") and len(head) >= 26:
        return Sniffed("image", "image/bmp")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed("image", "image/tiff")
    if head.startswith(b"fLaC"):
        return Sniffed("audio", "audio/flac")
    if head.startswith(b"OggS"):
        return Sniffed("audio", "audio/ogg")
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return Sniffed("audio", "audio/aiff")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("audio", "audio/webm")
    if head[4:8] == b"ftyp":
        if head[8:12] in _IMAGE_BRANDS:
            return None  # AVIF/HEIF: not decodable here
        return Sniffed("audio", "audio/mp4")
    if head.startswith(b"ID3"):
        return Sniffed("audio", "audio/mpeg")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync (MP3 without ID3) or ADTS AAC.
        return Sniffed("audio", "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg")
    return None
