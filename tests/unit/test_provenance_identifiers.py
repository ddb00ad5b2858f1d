"""ISCC content codes (iscc-core as the oracle), audio tags with ISRC/ISWC checked."""

from __future__ import annotations

from pathlib import Path

import iscc_core
import iscc_lib
import numpy as np
import pytest

from contentmatch_fingerprint.signals.provenance import audio_tags, iscc
from contentmatch_shared.identifiers import isrc_valid, iswc_valid
from tests.fixtures.provenance_media import audio_with_tags, picture


def test_conformance() -> None:
    assert iscc_core.conformance_selftest()
    assert iscc_lib.conformance_selftest()


def test_image_code_is_iscc_cores_and_pinned() -> None:
    rgb = picture(8830, (640, 480))
    pixels = iscc.image_pixels(rgb)
    assert len(pixels) == 1024
    code = iscc.image_code(rgb)
    assert code == iscc_core.gen_image_code_v0(pixels, bits=64)["iscc"]
    assert code == "ISCC:EEA3XZCJ5ZD5QRA2"
    # The same picture re-encoded or resized keeps (nearly) its code; another one does not.
    small = rgb.resize((320, 240))
    assert _distance(code, iscc.image_code(small)) <= 4
    assert _distance(code, iscc.image_code(picture(8831, (640, 480)))) > 12


def test_audio_code_from_chromaprint_items() -> None:
    rng = np.random.default_rng(8832)
    items = rng.integers(0, 2**32, 800, dtype=np.uint64).astype(np.uint32)
    code = iscc.audio_code(items)
    signed = [int(v) for v in items.view(np.int32)]
    assert code == iscc_core.gen_audio_code_v0(signed, bits=64)["iscc"]
    assert any(v < 0 for v in signed)  # the conversion matters
    assert code == "ISCC:EIAV7GL3KYZYI7QG"
    assert iscc.audio_code(np.zeros(0, np.uint32)) == iscc_core.gen_audio_code_v0([])["iscc"]


def _distance(a: str, b: str) -> int:
    da, db = iscc_core.decode_base32(a[5:])[2:], iscc_core.decode_base32(b[5:])[2:]
    return sum(bin(x ^ y).count("1") for x, y in zip(da, db, strict=True))


@pytest.mark.parametrize("suffix", [".mp3", ".flac"])
def test_audio_tags(tmp_path: Path, suffix: str) -> None:
    path = audio_with_tags(
        tmp_path / f"tagged{suffix}",
        {
            "ISRC": "US-RC1-76-07839",
            "ISWC": "T-034.524.680-1",
            "comment": "made with Suno",
            "title": "A song",
            "encoded_by": "Udio v1.5",
        },
    )
    facts = audio_tags.read_audio_tags(str(path))
    assert facts.isrc == ("USRC17607839",)
    assert facts.iswc == ("T0345246801",)
    assert facts.invalid_identifiers == ()
    assert "made with Suno" in facts.comments
    assert facts.title == "A song"


def test_malformed_identifiers_in_tags(tmp_path: Path) -> None:
    path = audio_with_tags(tmp_path / "bad.mp3", {"ISRC": "USRC1760783", "ISWC": "T-034.524.680-2"})
    facts = audio_tags.read_audio_tags(str(path))
    assert facts.isrc == () and facts.iswc == ()
    assert facts.invalid_identifiers == ("isrc: USRC1760783", "iswc: T-034.524.680-2")
    assert audio_tags.read_audio_tags(str(tmp_path / "missing.mp3")).empty
    (tmp_path / "junk.mp3").write_bytes(b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + b"\x00" * 100)
    audio_tags.read_audio_tags(str(tmp_path / "junk.mp3"))  # no exception


@pytest.mark.parametrize(
    ("code", "valid"),
    [("T0345246801", True), ("T0345246802", False), ("T9876543210", False), ("T034524680", False)],
)
def test_iswc_check_digit(code: str, valid: bool) -> None:
    assert iswc_valid(code) is valid


def test_isrc_format() -> None:
    # ISRC (ISO 3901) has no check digit: its format is what can be checked.
    assert isrc_valid("USRC17607839") and isrc_valid("GBAYE6800011")
    assert not isrc_valid("USRC1760783") and not isrc_valid("1SRC17607839")
    assert not isrc_valid("USRC1760783X")
