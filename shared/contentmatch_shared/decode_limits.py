"""What decoding a piece of untrusted media may cost, computed from what it declares.

A :class:`Budget` (CPU seconds, wall-clock seconds, bytes of memory) is derived from the media's
headers before anything is decoded: for an image from the mode and size Pillow will decode to
(bytes per pixel of its storage, the decoder's own buffers, the conversions the hashing does),
for audio from the declared rate x channels x duration. Media whose budget exceeds the
service's ceilings is refused before decoding (``image_too_large``,
``audio_sample_budget_exceeded`` ...); the decoding sandbox (``decode_sandbox``) then enforces the
budget on the decode itself, so a header that lies only buys the decode its declared budget.

Calibration (measured on the 2-core test machine, with margin): PNG/TIFF/WebP decode plus the
reduction to the working size costs ~10-50 ns per pixel; ffmpeg decodes and downmixes 2-10 ns per
input sample; the audio signals cost ~1 ms per second of audio.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from contentmatch_shared.errors import MediaError
from contentmatch_shared.settings import Settings

MB = 1024 * 1024

IMAGE_CPU_BASE_S = 3.0
IMAGE_CPU_S_PER_PIXEL = 100e-9
AUDIO_CPU_BASE_S = 3.0
AUDIO_CPU_S_PER_INPUT_SAMPLE = 25e-9  # ffmpeg: decode + downmix + resample, per channel-sample
AUDIO_CPU_S_PER_AUDIO_S = 0.005  # the worker: Chromaprint + landmarks, per second of audio
MIN_WALL_S = 20.0  # a deadline is never shorter (process start, imports, a busy machine)

# Bytes per pixel of Pillow's storage for each mode (it keeps 3-band images in 4 bytes).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# What the format's decoder holds besides the image (WebP and libtiff decode into their own
# buffer before Pillow copies it; PNG, GIF, BMP and JPEG stream rows into the image).
_DECODER_COPIES = {"WEBP": 2.0, "TIFF": 2.0}
IMAGE_FIXED_BYTES = 96 * MB  # the hashes, thumbnails and ORB of a <= 1024 px working copy
STRIP_THRESHOLD_PIXELS = 4_000_000  # larger images are converted strip by strip (no full copy)
STRIP_PIXELS = 1_000_000  # pixels converted at once by reduce_in_strips
_CONVERSION_BYTES_PER_PIXEL = 40  # below the threshold: float64 copies of 16-bit images at most

# Error codes of decodes stopped by a limit, and the limit each names (metric label).
LIMIT_OF_CODE = {
    "decode_timeout": "deadline",
    "decode_cpu_exceeded": "cpu",
    "decode_memory_exceeded": "memory",
    "decoder_crashed": "crash",
    "image_too_large": "budget",
    "audio_sample_rate_unsupported": "budget",
    "audio_channels_unsupported": "budget",
    "audio_sample_budget_exceeded": "budget",
}


@dataclass(frozen=True)
class Budget:
    """What one decode may use: CPU seconds, wall-clock seconds, bytes beyond its baseline."""

    cpu_s: float
    wall_s: float
    memory_bytes: int


@dataclass(frozen=True)
class DecodeLimits:
    """A service's ceilings for decoding, from settings (one place for every figure)."""

    job_memory_bytes: int  # one decode at most
    total_memory_bytes: int  # every decode of the service at once
    decoder_process_bytes: int  # address space of one ffmpeg/ffprobe
    wall_factor: float
    audio_max_duration_s: float
    audio_timeout_s: float
    audio_max_sample_rate: int
    audio_max_channels: int
    audio_max_input_samples: int

    @classmethod
    def from_settings(cls, settings: Settings, service: str = "fingerprint") -> DecodeLimits:
        total = (
            settings.report_decode_memory_mb
            if service == "report"
            else settings.fingerprint_decode_memory_mb
        )
        return cls(
            job_memory_bytes=min(settings.decode_job_memory_mb, total) * MB,
            total_memory_bytes=total * MB,
            decoder_process_bytes=settings.decoder_process_memory_mb * MB,
            wall_factor=settings.decode_wall_factor,
            audio_max_duration_s=settings.audio_max_duration_s,
            audio_timeout_s=settings.audio_decode_timeout_s,
            audio_max_sample_rate=settings.audio_max_sample_rate,
            audio_max_channels=settings.audio_max_channels,
            audio_max_input_samples=settings.audio_max_input_samples,
        )

    def wall_for(self, cpu_s: float) -> float:
        return max(MIN_WALL_S, self.wall_factor * cpu_s)

    def probe(self) -> Budget:
        """Limits of a job before it has read the media's headers (sniffing, opening)."""
        return Budget(cpu_s=10.0, wall_s=self.wall_for(10.0), memory_bytes=256 * MB)


def pixel_bytes(mode: str) -> int:
    return _PIXEL_BYTES.get(mode, 4)


def image_decode_bytes(
    fmt: str | None,
    mode: str,
    size: tuple[int, int],
    full_size: tuple[int, int] | None = None,
    *,
    progressive_jpeg: bool = False,
    components: int = 3,
) -> int:
    """Peak bytes of decoding an image of ``size`` (after JPEG draft scaling) in ``mode`` and
    reducing it to the working size, strip by strip when it is large.

    ``full_size`` is the size before draft scaling: a progressive JPEG keeps 16-bit DCT
    coefficients for every component of the full image whatever the output scale.
    """
    w, h = size
    pixels = w * h
    decoded = pixels * pixel_bytes(mode) * _DECODER_COPIES.get((fmt or "").upper(), 1.0)
    if progressive_jpeg:
        fw, fh = full_size or size
        decoded += fw * fh * components * 2
    # Small images are converted whole; large ones strip by strip (reduce_in_strips).
    converted = pixels if pixels <= STRIP_THRESHOLD_PIXELS else STRIP_PIXELS
    conversion = converted * _CONVERSION_BYTES_PER_PIXEL
    return int(decoded + conversion + IMAGE_FIXED_BYTES)


def image_budget(limits: DecodeLimits, decode_bytes: int, pixels: int) -> Budget:
    """The budget of decoding an image, or ``MediaError('image_too_large')`` beyond the ceiling."""
    if decode_bytes > limits.job_memory_bytes:
        raise MediaError(
            "image_too_large",
            f"decoding this image needs ~{decode_bytes / MB:.0f} MB; "
            f"the limit is {limits.job_memory_bytes / MB:.0f} MB",
        )
    cpu = IMAGE_CPU_BASE_S + IMAGE_CPU_S_PER_PIXEL * pixels
    return Budget(cpu_s=cpu, wall_s=limits.wall_for(cpu), memory_bytes=decode_bytes)


@dataclass(frozen=True)
class AudioBudget:
    """The audio decode's budget: the worker's own share and the ffmpeg subprocess's."""

    worker: Budget
    decoder: Budget
    duration_s: float  # the duration the budget was computed for (the cap when undeclared)
    declared_s: float | None  # what the container declares, if anything


def audio_budget(
    limits: DecodeLimits, sample_rate: int, channels: int, declared_s: float | None
) -> AudioBudget:
    """The budget of decoding audio that declares ``sample_rate`` Hz, ``channels`` channels and
    ``declared_s`` seconds (None when the container does not say: the duration cap is assumed).

    Raises MediaError for absurd rates or channel counts and for more input samples than
    ``audio_max_input_samples`` (cost grows with rate x channels, not with the file size)."""
    if not 1000 <= sample_rate <= limits.audio_max_sample_rate:
        raise MediaError(
            "audio_sample_rate_unsupported",
            f"sample rate {sample_rate} Hz is outside 1000..{limits.audio_max_sample_rate} Hz",
        )
    if not 1 <= channels <= limits.audio_max_channels:
        raise MediaError(
            "audio_channels_unsupported",
            f"{channels} channels; at most {limits.audio_max_channels} are decoded",
        )
    cap = limits.audio_max_duration_s
    duration = cap if declared_s is None or not math.isfinite(declared_s) else declared_s
    duration = min(max(duration, 0.0), cap + 1.0)
    samples = sample_rate * channels * duration
    if samples > limits.audio_max_input_samples:
        raise MediaError(
            "audio_sample_budget_exceeded",
            f"{channels} channels x {sample_rate} Hz x {duration:.0f} s = {samples / 1e9:.1f} G "
            f"samples to decode; the limit is {limits.audio_max_input_samples / 1e9:.1f} G",
        )
    decoder_cpu = AUDIO_CPU_BASE_S + AUDIO_CPU_S_PER_INPUT_SAMPLE * samples
    worker_cpu = AUDIO_CPU_BASE_S + AUDIO_CPU_S_PER_AUDIO_S * duration
    wall = min(limits.wall_for(decoder_cpu + worker_cpu), max(limits.audio_timeout_s, MIN_WALL_S))
    return AudioBudget(
        worker=Budget(cpu_s=worker_cpu, wall_s=wall, memory_bytes=256 * MB),
        decoder=Budget(cpu_s=decoder_cpu, wall_s=wall, memory_bytes=limits.decoder_process_bytes),
        duration_s=duration,
        declared_s=declared_s if declared_s is not None and math.isfinite(declared_s) else None,
    )


# ---------------------------------------------------------------------------------------------
# Images: the budget of an opened (not yet decoded) Pillow image, and staying within it


def opened_image_budget(
    im: Image.Image, full_size: tuple[int, int], limits: DecodeLimits
) -> Budget:
    """The budget of loading ``im`` (opened, draft already requested) and reducing it, from what
    its headers declare. Raises ``MediaError('image_too_large')`` beyond the job ceiling."""
    progressive = im.format == "JPEG" and bool(
        im.info.get("progressive") or im.info.get("progression")
    )
    components = len(getattr(im, "layer", None) or ()) or len(im.getbands())
    decode = image_decode_bytes(
        im.format,
        im.mode,
        im.size,
        full_size,
        progressive_jpeg=progressive,
        components=components,
    )
    return image_budget(limits, decode, full_size[0] * full_size[1])


# EXIF orientation -> the transposition that makes the picture upright (as ImageOps does), for
# pictures reduced before they are turned.
EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def reduce_in_strips(
    im: Image.Image, factor: int, convert: Callable[[Image.Image], Image.Image]
) -> Image.Image:
    """``convert(im).reduce(factor)`` without ever holding a converted copy of the whole image:
    strips of rows (a multiple of ``factor`` high) are converted and reduced one at a time. The
    result is the one-shot result: ``reduce``'s blocks never straddle a strip boundary.
    ``convert`` must work pixel by pixel (no statistics of the whole image)."""
    w, h = im.size
    rows = max(factor, STRIP_PIXELS // max(w, 1) // factor * factor)
    out: Image.Image | None = None
    for y0 in range(0, h, rows):
        part = convert(im.crop((0, y0, w, min(h, y0 + rows)))).reduce(factor)
        if out is None:
            out = Image.new(part.mode, (-(-w // factor), -(-h // factor)))
        out.paste(part, (0, y0 // factor))
    assert out is not None
    return out
