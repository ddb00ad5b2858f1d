"""The invisible DWT-DCT watermark of Stable Diffusion's reference scripts and of SDXL
(``invisible-watermark``'s ``dwtDct`` method), decoded only.

The decoder computes exactly what ``imwatermark.maxDct.EmbedMaxDct.decode`` computes (the tests
check it bit for bit against the package), vectorised: the package loops over every 4x4 block in
Python (~0.3 s for a 1024 px image), this takes a few milliseconds. Per block of the Haar
approximation of the U channel (YUV of the pixels *as if* they were BGR), the largest non-first
coefficient's magnitude modulo 36 votes 0 or 1 for bit ``block_number % n``; a bit is the
majority of its votes.

The marks:

- Stable Diffusion 1.x scripts (``txt2img.py``): the bytes ``StableDiffusionV1`` (136 bits),
  embedded in BGR order (they convert RGB to BGR first);
- SDXL (``diffusers`` ``StableDiffusionXLWatermarker``): a fixed 48-bit message, embedded in the
  RGB array as it is.

Both messages are tried in both channel orders. A mark is reported when the decoded bits agree
with a message in at least :data:`MARKS`' ``min_agreement`` places: the least count whose
binomial tail, times the four tries, is below ``CHANCE_CEILING`` (1e-6) for an unmarked image
whose bits are fair coins. Smooth images do not give fair coins (their bits tend to one value),
but a constant bit string agrees with either message in at most 68 of 136 / 27 of 48 places, far
below the thresholds. The mark survives lossless copies only (any re-encoding, resize or crop
breaks it), so only lossless formats are tried and it is supporting evidence, never grounds.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

CHANCE_CEILING = 1e-6
SCALE = 36.0  # invisible-watermark's default dwtDct scale of the U channel
BLOCK = 4
MIN_PIXELS = 256 * 256  # the package refuses smaller images
MAX_PIXELS = 2048 * 2048  # generators' native sizes; larger images are not tried
# A large picture is first decoded in a few bands of rows; only when a message already agrees
# there in SAMPLE_Z standard deviations more bits than a coin would (a few per cent of clean
# pictures) is the whole picture decoded.
SAMPLE_BANDS = 3
SAMPLE_ROWS = 64
SAMPLE_Z = 2.0
SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110


def _bits_of_bytes(message: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(message, dtype=np.uint8)).astype(bool)


def min_agreement(n_bits: int, tries: int, ceiling: float = CHANCE_CEILING) -> int:
    """The least k with ``tries`` x P(Binomial(n_bits, 1/2) >= k) < ``ceiling``."""
    tail = 0
    for k in range(n_bits, -1, -1):
        tail += math.comb(n_bits, k)
        if tries * tail / 2**n_bits >= ceiling:
            return k + 1
    return 0


@dataclass(frozen=True)
class Mark:
    name: str
    ai_system: str
    bits: np.ndarray
    channel_order: str  # the order the generator embeds in: "BGR" or "RGB"


MARKS = (
    Mark("StableDiffusionV1", "Stable Diffusion", _bits_of_bytes(b"StableDiffusionV1"), "BGR"),
    Mark(
        "SDXL",
        "Stable Diffusion XL",
        np.array([int(b) for b in bin(SDXL_MESSAGE)[2:]], dtype=bool),
        "RGB",
    ),
)
N_BITS = {mark.name: len(mark.bits) for mark in MARKS}
_ORDERS = ("BGR", "RGB")
TRIES = len(MARKS) * len(_ORDERS)
THRESHOLDS = {mark.name: min_agreement(len(mark.bits), TRIES) for mark in MARKS}
SAMPLE_THRESHOLDS = {name: n / 2 + SAMPLE_Z * math.sqrt(n) / 2 for name, n in N_BITS.items()}


@dataclass(frozen=True)
class WatermarkFinding:
    mark: str
    ai_system: str
    channel_order: str  # the order of the pixels the mark was found in
    agreement: int  # bits agreeing with the message
    n_bits: int
    threshold: int
    chance: float  # P(agreement this high by chance) on an unmarked image, all tries counted


_HAAR = 0.7071067811865476  # PyWavelets' Haar filter taps


def haar_approximation(channel: np.ndarray) -> np.ndarray:
    """``pywt.dwt2(channel, "haar")[0]`` for an even-sized channel, bit for bit (the same
    products and sums in the same order: rows of pairs first, then columns), ~7x faster."""
    x = channel.astype(np.float64)
    rows = x[0::2] * _HAAR + x[1::2] * _HAAR
    return rows[:, 0::2] * _HAAR + rows[:, 1::2] * _HAAR


def block_votes(pixels: np.ndarray, order: str = "BGR") -> np.ndarray:
    """Each 4x4 block's vote (row by row) of ``pixels`` read in channel ``order`` (the encoder
    takes its input as BGR), whatever the message."""
    rows, cols = pixels.shape[:2]
    code = cv2.COLOR_BGR2YUV if order == "BGR" else cv2.COLOR_RGB2YUV
    u = cv2.cvtColor(np.ascontiguousarray(pixels[: rows // 4 * 4, : cols // 4 * 4]), code)[:, :, 1]
    approx = haar_approximation(u)
    r, c = approx.shape[0] // BLOCK, approx.shape[1] // BLOCK
    blocks = (
        approx[: r * BLOCK, : c * BLOCK]
        .reshape(r, BLOCK, c, BLOCK)
        .transpose(0, 2, 1, 3)
        .reshape(r * c, BLOCK * BLOCK)[:, 1:]
    )
    strongest = np.abs(blocks[np.arange(len(blocks)), np.argmax(np.abs(blocks), axis=1)])
    return (strongest % SCALE) > 0.5 * SCALE


def bits_of_votes(
    votes: np.ndarray, n_bits: int, block_numbers: np.ndarray | None = None
) -> np.ndarray:
    """Block ``i`` votes for bit ``i % n_bits``; a bit is the majority of its votes
    (``block_numbers``: the blocks' numbers when ``votes`` are not all of them from the first)."""
    numbers = np.arange(len(votes)) if block_numbers is None else block_numbers
    which = numbers % n_bits
    ones = np.bincount(which, weights=votes, minlength=n_bits)
    counts = np.bincount(which, minlength=n_bits)
    return (ones / np.maximum(counts, 1)) * 255 > 127


def decode_bits(pixels: np.ndarray, n_bits: int) -> np.ndarray:
    """``EmbedMaxDct(wmLen=n_bits).decode(pixels)``: ``pixels`` is H x W x 3 uint8 taken as BGR."""
    return bits_of_votes(block_votes(pixels, "BGR"), n_bits)


def _chance(agreement: int, n_bits: int) -> float:
    tail = sum(math.comb(n_bits, k) for k in range(agreement, n_bits + 1))
    return min(1.0, TRIES * tail / 2**n_bits)


def _agreements(votes: np.ndarray, numbers: np.ndarray | None, order: str) -> dict:
    return {
        (mark.name, order): int((bits_of_votes(votes, len(mark.bits), numbers) == mark.bits).sum())
        for mark in MARKS
    }


def agreements(rgb: np.ndarray) -> dict[tuple[str, str], int]:
    """(mark, channel order) -> bits of the decoded pixels agreeing with the mark's message."""
    out: dict[tuple[str, str], int] = {}
    for order in _ORDERS:
        # The encoder read its input as BGR: RGB pixels read as BGR are the "RGB" order.
        out |= _agreements(block_votes(rgb, "BGR" if order == "RGB" else "RGB"), None, order)
    return out


def _size(pixels: np.ndarray | Image.Image) -> tuple[int, int]:
    """(rows, columns)."""
    if isinstance(pixels, Image.Image):
        return pixels.height, pixels.width
    return pixels.shape[0], pixels.shape[1]


def _rows(pixels: np.ndarray | Image.Image, top: int, bottom: int) -> np.ndarray:
    if isinstance(pixels, Image.Image):  # only these rows become an array
        return np.asarray(pixels.crop((0, top, pixels.width, bottom)))
    return pixels[top:bottom]


def sampled_agreements(rgb: np.ndarray | Image.Image) -> dict[tuple[str, str], int]:
    """``agreements`` from ``SAMPLE_BANDS`` bands of ``SAMPLE_ROWS`` rows spread over the
    picture (a quarter of a 1024 px picture's blocks): a block's number, hence its bit, is its
    place in the whole picture, so a band votes for the same bits as it does there."""
    rows, cols = _size(rgb)
    per_row = cols // 8  # blocks per row of blocks (a block covers 8 x 8 pixels)
    block_rows = rows // 8
    half = SAMPLE_ROWS // 16
    starts = sorted(
        {
            max(0, min(block_rows - 2 * half, round(block_rows * (i + 0.5) / SAMPLE_BANDS) - half))
            for i in range(SAMPLE_BANDS)
        }
    )
    out: dict[tuple[str, str], int] = {}
    for order in _ORDERS:
        votes, numbers = [], []
        for start in starts:
            band = _rows(rgb, start * 8, start * 8 + SAMPLE_ROWS)
            votes.append(block_votes(band, "BGR" if order == "RGB" else "RGB"))
            numbers.append(start * per_row + np.arange(len(votes[-1])))
        out |= _agreements(np.concatenate(votes), np.concatenate(numbers), order)
    return out


def find_marks(rgb: np.ndarray | Image.Image) -> list[WatermarkFinding]:
    """The marks in full-resolution RGB pixels (H x W x 3 uint8, or an RGB image), strongest
    first."""
    if isinstance(rgb, Image.Image):
        if rgb.mode != "RGB":
            return []
    elif rgb.ndim != 3 or rgb.shape[2] != 3:
        return []
    rows, cols = _size(rgb)
    if rows * cols < MIN_PIXELS:
        return []
    if rows >= 2 * SAMPLE_BANDS * SAMPLE_ROWS:
        sampled = sampled_agreements(rgb)
        if all(a < SAMPLE_THRESHOLDS[m] for (m, _), a in sampled.items()):
            return []  # (what a clean picture gives: the whole decode would not find a mark)
    rgb = np.asarray(rgb)
    agreed = agreements(rgb)
    found = [
        WatermarkFinding(
            mark.name,
            mark.ai_system,
            order,
            agreed[mark.name, order],
            len(mark.bits),
            THRESHOLDS[mark.name],
            _chance(agreed[mark.name, order], len(mark.bits)),
        )
        for mark in MARKS
        for order in _ORDERS
        if agreed[mark.name, order] >= THRESHOLDS[mark.name]
    ]
    return sorted(found, key=lambda f: f.chance)


def lossless_format(data: bytes) -> bool:
    """Whether ``data`` starts like a lossless image the mark may have survived in."""
    return (
        data[:8] == b"\x89PNG\r\n\x1a\n"
        or data[:2] == b"BM"
        or data[:4] in (b"II*\x00", b"MM\x00*")
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP" and b"VP8L" in data[12:40])
    )


def lossless_pixels(data: bytes) -> np.ndarray | None:
    """Full-resolution RGB pixels of a lossless image within the size range, else None (JPEG,
    lossy WebP, too small or too large: the mark cannot be there or is not looked for)."""
    if not lossless_format(data):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if not MIN_PIXELS <= w * h <= MAX_PIXELS or getattr(im, "n_frames", 1) > 1:
                    return None
                rgb = im.convert("RGB")
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None
    return np.asarray(rgb)


def read_watermark(data: bytes) -> list[WatermarkFinding]:
    """The marks of an encoded image (decoded here when it is lossless and in range)."""
    pixels = lossless_pixels(data)
    return [] if pixels is None else find_marks(pixels)
