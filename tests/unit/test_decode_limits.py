"""Decode budgets from declared sizes, and the strip-wise reduction that keeps decodes in them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from contentmatch_shared import decode_limits
from contentmatch_shared.decode_limits import (
    IMAGE_FIXED_BYTES,
    MB,
    STRIP_PIXELS,
    DecodeLimits,
    audio_budget,
    image_budget,
    image_decode_bytes,
    opened_image_budget,
    pixel_bytes,
    reduce_in_strips,
)
from contentmatch_shared.errors import MediaError
from contentmatch_shared.settings import Settings

LIMITS = DecodeLimits.from_settings(Settings())


def test_pillow_storage_sizes() -> None:
    assert pixel_bytes("L") == pixel_bytes("P") == pixel_bytes("1") == 1
    assert pixel_bytes("I;16") == 2
    # 3-band images are stored in 4 bytes per pixel, like RGBA, CMYK, I and F
    assert {pixel_bytes(m) for m in ("RGB", "RGBA", "CMYK", "YCbCr", "I", "F", "LA")} == {4}


def test_the_79_99_megapixel_png_costs_what_decoding_it_allocates() -> None:
    pixels = 8943 * 8944
    rgba = image_decode_bytes("PNG", "RGBA", (8943, 8944))
    assert rgba == pixels * 4 + STRIP_PIXELS * 40 + IMAGE_FIXED_BYTES
    assert 400 * MB < rgba < LIMITS.job_memory_bytes  # fits one fingerprint decode ...
    grey = image_decode_bytes("PNG", "L", (8943, 8944))
    assert grey < rgba / 2
    report = DecodeLimits.from_settings(Settings(), "report")
    with pytest.raises(MediaError) as exc:  # ... but not a report thumbnail
        image_budget(report, rgba, pixels)
    assert exc.value.code == "image_too_large"
    assert "MB" in exc.value.message


def test_decoders_that_copy_and_progressive_jpegs_cost_more() -> None:
    png = image_decode_bytes("PNG", "RGBA", (4000, 4000))
    assert image_decode_bytes("WEBP", "RGBA", (4000, 4000)) - png == 4000 * 4000 * 4
    assert image_decode_bytes("TIFF", "RGBA", (4000, 4000)) - png == 4000 * 4000 * 4
    # a JPEG drafted to 1/8 scale still holds every DCT coefficient when it is progressive
    small = image_decode_bytes("JPEG", "RGB", (1000, 1000), (8000, 8000))
    progressive = image_decode_bytes(
        "JPEG", "RGB", (1000, 1000), (8000, 8000), progressive_jpeg=True, components=3
    )
    assert progressive - small == 8000 * 8000 * 3 * 2


def test_image_cpu_budget_grows_with_pixels_and_the_deadline_with_it() -> None:
    small = image_budget(LIMITS, 100 * MB, 1_000_000)
    big = image_budget(LIMITS, 100 * MB, 80_000_000)
    assert big.cpu_s > small.cpu_s
    assert big.wall_s >= LIMITS.wall_factor * big.cpu_s
    assert small.wall_s >= 20  # never shorter than the floor


def test_opened_image_budget_reads_the_headers_only() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (3000, 2000)).save(out, "PNG")
    im = Image.open(io.BytesIO(out.getvalue()))
    budget = opened_image_budget(im, im.size, LIMITS)
    assert budget.memory_bytes == image_decode_bytes("PNG", "RGBA", (3000, 2000))
    assert im.tile  # still to be decoded


@pytest.mark.parametrize(
    ("rate", "channels", "code"),
    [
        (384_000, 8, "audio_sample_rate_unsupported"),
        (4_000_000, 1, "audio_sample_rate_unsupported"),
        (0, 2, "audio_sample_rate_unsupported"),
        (44_100, 64, "audio_channels_unsupported"),
        (44_100, 0, "audio_channels_unsupported"),
    ],
)
def test_absurd_audio_is_refused_before_decoding(rate: int, channels: int, code: str) -> None:
    with pytest.raises(MediaError) as exc:
        audio_budget(LIMITS, rate, channels, 10.0)
    assert exc.value.code == code


def test_audio_budget_counts_input_samples() -> None:
    song = audio_budget(LIMITS, 44_100, 2, 240.0)
    assert song.decoder.cpu_s < 5 and song.worker.cpu_s < 5
    long = audio_budget(LIMITS, 44_100, 2, 7200.0)
    assert long.decoder.cpu_s > song.decoder.cpu_s
    with pytest.raises(MediaError) as exc:  # 8 x 192 kHz x 2 h = 11 G samples
        audio_budget(LIMITS, 192_000, 8, 7200.0)
    assert exc.value.code == "audio_sample_budget_exceeded"
    unknown = audio_budget(LIMITS, 44_100, 2, None)  # undeclared: assume the duration cap
    assert unknown.duration_s == LIMITS.audio_max_duration_s
    assert unknown.declared_s is None
    assert unknown.decoder.wall_s <= LIMITS.audio_timeout_s
    assert song.decoder.memory_bytes == LIMITS.decoder_process_bytes


def test_service_limits_come_from_settings() -> None:
    settings = Settings(fingerprint_decode_memory_mb=900, report_decode_memory_mb=100)
    fingerprint = DecodeLimits.from_settings(settings)
    report = DecodeLimits.from_settings(settings, "report")
    assert fingerprint.total_memory_bytes == 900 * MB
    assert fingerprint.job_memory_bytes == settings.decode_job_memory_mb * MB
    assert report.total_memory_bytes == report.job_memory_bytes == 100 * MB


@pytest.mark.parametrize("factor", [2, 3, 7])
@pytest.mark.parametrize("mode", ["RGBA", "L", "P"])
def test_reduce_in_strips_equals_converting_then_reducing(
    factor: int, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decode_limits, "STRIP_PIXELS", 20_000)
    rng = np.random.default_rng(factor)
    w, h = 317, 491  # strips of STRIP_PIXELS // w rows, and a ragged last block
    im = Image.fromarray(rng.integers(0, 255, (h, w, 4), dtype=np.uint8), "RGBA").convert(mode)

    def convert(part: Image.Image) -> Image.Image:
        return part.convert("RGB")

    whole = convert(im).reduce(factor)
    stripped = reduce_in_strips(im, factor, convert)
    assert stripped.size == whole.size
    assert np.array_equal(np.asarray(stripped), np.asarray(whole))
