"""What the match index can apply: checked before publishing a work and on reading the registry."""

from __future__ import annotations

import base64

import pytest

from contentmatch_shared.fingerprints import AudioFingerprint, ImageFingerprint, indexable_problem

PHASH = "00ff" * 4
PDQ = "ab" * 32


def _image(**hashes: str) -> ImageFingerprint:
    return ImageFingerprint(width=64, height=48, hashes=hashes)


def _audio(chromaprint: str, duration_s: float = 10.0, rate: float = 8.08) -> AudioFingerprint:
    return AudioFingerprint(duration_s=duration_s, chromaprint=chromaprint, item_rate=rate)


def test_a_complete_image_or_audio_fingerprint_is_indexable() -> None:
    assert indexable_problem(_image(phash=PHASH, pdq=PDQ)) is None
    assert indexable_problem(_image(phash=PHASH, pdq=PDQ, dhash=PHASH)) is None
    assert indexable_problem(_audio(base64.b64encode(b"\x01\x00\x00\x00" * 80).decode())) is None


@pytest.mark.parametrize(
    ("fingerprint", "problem"),
    [
        (_image(), "no 'phash' hash"),
        (_image(phash=PHASH), "no 'pdq' hash"),
        (_image(phash="zz" * 8, pdq=PDQ), "hash 'phash' is not hex"),
        (_image(phash=PHASH, pdq="ab" * 8), "hash 'pdq' has 64 bits, not 256"),
        (_image(phash=PHASH, pdq=PDQ, dhash="0f"), "hash 'dhash' has 8 bits, not 64"),
        (ImageFingerprint(width=0, height=5, hashes={"phash": PHASH, "pdq": PDQ}), "0x5 px"),
        (_audio(""), "chromaprint of 0 bytes"),
        (_audio("not base64!"), "chromaprint is not base64"),
        (_audio(base64.b64encode(b"\x01\x02\x03").decode()), "3 bytes is not a whole number"),
        (_audio("AQAAAA==", rate=0.0), "item rate 0.0"),
        (_audio("AQAAAA==", duration_s=float("nan")), "audio duration nan"),
    ],
)
def test_what_the_index_cannot_apply_is_named(fingerprint: object, problem: str) -> None:
    found = indexable_problem(fingerprint)  # type: ignore[arg-type]
    assert found is not None and problem in found
