from __future__ import annotations

import io

import pytest
from PIL import Image

from contentmatch_shared.media import sniff


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
)
def test_images_are_detected_from_content(fmt: str, content_type: str) -> None:
    sniffed = sniff(_image(fmt)[:64])
    assert sniffed is not None
    assert sniffed.media_type == "image"
    assert sniffed.content_type == content_type


@pytest.mark.parametrize(
    ("head", "content_type"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"fLaC\x00\x00\x00\x22", "audio/flac"),
        (b"OggS\x00\x02", "audio/ogg"),
        (b"ID3\x04\x00\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x64", "audio/mpeg"),
        (b"\xff\xf1\x50\x80", "audio/aac"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "audio/mp4"),
        (b"FORM\x00\x00\x00\x00AIFF", "audio/aiff"),
    ],
)
def test_audio_is_detected_from_content(head: bytes, content_type: str) -> None:
    sniffed = sniff(head)
    assert sniffed is not None
    assert (sniffed.media_type, sniffed.content_type) == ("audio", content_type)


@pytest.mark.parametrize(
    "head", [b"", b"%PDF-1.7", b"PK\x03\x04zip", b"hello world", b"\x00\x00\x00\x18ftypavif"]
)
def test_other_content_is_refused(head: bytes) -> None:
    assert sniff(head) is None
