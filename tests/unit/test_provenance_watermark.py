"""The Stable Diffusion / SDXL DWT-DCT watermark: the vectorised decoder against the package's,
marks embedded by the package's encoder in both channel orders, and negative controls."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from contentmatch_fingerprint.signals.provenance import iscc, watermark
from contentmatch_shared.thumb_payload import decode_thumb
from tests.fixtures.images import make_image
from tests.fixtures.provenance_media import (
    encode,
    package_decode,
    picture,
    sdxl_float_pipeline,
    textured,
    watermarked,
)


def _rgb(seed: int, size: tuple[int, int] = (512, 512)) -> np.ndarray:
    return np.asarray(make_image(seed, size).convert("RGB"))


@pytest.mark.parametrize("size", [(512, 512), (517, 389), (300, 260)])
@pytest.mark.parametrize("n_bits", [48, 136])
def test_decoder_equals_the_package(size: tuple[int, int], n_bits: int) -> None:
    rgb = _rgb(8800 + size[0], size)
    for pixels in (rgb, rgb[:, :, ::-1], np.asarray(picture(1, size))):
        pixels = np.ascontiguousarray(pixels)
        assert np.array_equal(watermark.decode_bits(pixels, n_bits), package_decode(pixels, n_bits))


def test_thresholds_keep_chance_below_one_in_a_million() -> None:
    for mark in watermark.MARKS:
        n, k = len(mark.bits), watermark.THRESHOLDS[mark.name]
        tail = sum(math.comb(n, j) for j in range(k, n + 1)) / 2**n
        below = sum(math.comb(n, j) for j in range(k - 1, n + 1)) / 2**n
        assert watermark.TRIES * tail < watermark.CHANCE_CEILING <= watermark.TRIES * below
        # A constant bit string (what a flat picture decodes to) is far below the threshold.
        assert max(mark.bits.sum(), n - mark.bits.sum()) < k - 10
    assert watermark.THRESHOLDS == {"StableDiffusionV1": 98, "SDXL": 42}


@pytest.mark.parametrize("mark", ["StableDiffusionV1", "SDXL"])
@pytest.mark.parametrize("order", ["BGR", "RGB"])
def test_marks_found_in_both_channel_orders(mark: str, order: str) -> None:
    marked = watermarked(textured(8810), mark, order)
    data = encode(Image.fromarray(marked), "PNG")
    (found,) = watermark.read_watermark(data)
    assert (found.mark, found.channel_order) == (mark, order)
    assert found.agreement >= found.n_bits - 12 and found.chance < 1e-9
    # A lossy copy is not looked at (the mark does not survive it).
    assert watermark.read_watermark(encode(Image.fromarray(marked), "JPEG", quality=95)) == []


def test_sdxl_as_diffusers_embeds_it() -> None:
    (found,) = watermark.find_marks(sdxl_float_pipeline(textured(8811)))
    assert (found.mark, found.ai_system, found.channel_order) == (
        "SDXL",
        "Stable Diffusion XL",
        "RGB",
    )


def test_negative_controls() -> None:
    """Clean pictures of every kind: none reaches a threshold (nor comes near it)."""
    rng = np.random.default_rng(8812)
    controls = [_rgb(8820 + i, (512, 512)) for i in range(6)]
    controls += [_rgb(8840 + i, (768, 512)) for i in range(2)]
    controls += [np.asarray(picture(i, (512, 512))) for i in range(4)]
    controls += [textured(8860 + i) for i in range(6)]
    controls += [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(2)]
    controls += [np.full((512, 512, 3), v, dtype=np.uint8) for v in (0, 128, 255)]
    ramp = np.tile(np.linspace(0, 255, 512, dtype=np.uint8)[None, :, None], (512, 1, 3))
    controls += [ramp, np.ascontiguousarray(ramp.transpose(1, 0, 2))]
    worst = 0.0
    for rgb in controls:
        agreed = watermark.agreements(rgb)
        for (mark, _order), agreement in agreed.items():
            assert agreement < watermark.THRESHOLDS[mark]
            worst = max(worst, agreement / watermark.N_BITS[mark])
    assert worst < 0.7  # thresholds: 98/136 = 0.72, 42/48 = 0.875


def test_out_of_range_images_are_not_tried() -> None:
    assert watermark.read_watermark(encode(picture(0, (200, 200)), "PNG")) == []
    assert watermark.read_watermark(b"not an image") == []
    assert (
        watermark.lossless_pixels(encode(picture(0, (300, 300)), "WEBP", lossless=True)) is not None
    )
    assert watermark.lossless_pixels(encode(picture(0, (300, 300)), "WEBP", quality=90)) is None


def test_image_signals_carry_iscc_and_the_mark() -> None:
    from contentmatch_fingerprint.signals.image import fingerprint_image

    marked = Image.fromarray(watermarked(textured(8813), "SDXL"))
    fingerprint = fingerprint_image(encode(marked, "PNG"))
    code = fingerprint.extra["iscc"]
    assert code == iscc.image_code_of_grey(decode_thumb(fingerprint.extra["thumb"]))
    full = iscc.image_code(marked)  # from every pixel: at most a few bits away
    assert _bit_distance(code, full) <= 3
    (found,) = fingerprint.extra["watermark"]
    assert (found["mark"], found["channel_order"]) == ("SDXL", "RGB")
    # A lossy copy has its ISCC (nearly the same) and no mark looked for.
    lossy = fingerprint_image(encode(marked, "JPEG", quality=95))
    assert lossy.extra["iscc"].startswith("ISCC:EE") and "watermark" not in lossy.extra
    plain = fingerprint_image(encode(Image.fromarray(textured(8814)), "PNG"))
    assert "watermark" not in plain.extra


def test_haar_approximation_is_pywavelets() -> None:
    import pywt

    rng = np.random.default_rng(8815)
    for shape in ((256, 256), (384, 512), (516, 388)):
        channel = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(watermark.haar_approximation(channel), pywt.dwt2(channel, "haar")[0])


def test_bands_vote_as_in_the_whole_picture() -> None:
    """A band's votes are the whole picture's votes of the same blocks, for the same bits."""
    rgb = watermarked(textured(8816, (1024, 1000)), "StableDiffusionV1")
    whole = watermark.block_votes(rgb, "RGB")
    per_row = 1024 // 8
    for start in (0, 37, 117):
        band = watermark.block_votes(rgb[start * 8 : start * 8 + 64], "RGB")
        assert np.array_equal(band, whole[start * per_row : (start + 8) * per_row])
    sampled = watermark.sampled_agreements(rgb)
    assert sampled["StableDiffusionV1", "BGR"] >= 0.9 * 136
    clean = watermark.sampled_agreements(textured(8817, (1024, 1000)))
    assert all(a < watermark.SAMPLE_THRESHOLDS[m] for (m, _), a in clean.items())


def _bit_distance(a: str, b: str) -> int:
    import iscc_core

    da, db = (int.from_bytes(iscc_core.decode_base32(c[5:])[2:], "big") for c in (a, b))
    return bin(da ^ db).count("1")
