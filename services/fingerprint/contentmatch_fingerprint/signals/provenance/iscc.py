"""ISCC content codes (ISO 24138) computed with ``iscc-lib``: the Image-Code of the picture and
the Audio-Code of the Chromaprint items the audio signal already computed.

The Image-Code follows ``iscc-sdk``'s normalisation (upright, transparency on white, grey,
32 x 32 bicubic), starting from the grey thumbnail the image signals already made rather than
from every pixel: a tenth of the cost, a bit or two of 64 apart at most (docs/provenance.md).
The Audio-Code takes Chromaprint's raw items as signed 32-bit integers (``fpcalc -raw
-signed``, as ``iscc-sdk`` does).
"""

from __future__ import annotations

import iscc_lib
import numpy as np
from PIL import Image

CODE_BITS = 64
IMAGE_SIDE = 32


def image_pixels(rgb: Image.Image) -> list[int]:
    """The 1024 grey values ``gen_image_code_v0`` hashes."""
    grey = rgb.convert("L").resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BICUBIC)
    return np.asarray(grey, dtype=np.uint8).ravel().tolist()


def image_code_of_grey(grey: np.ndarray) -> str:
    """``ISCC:EE...`` of an upright grey picture (h x w uint8), such as the grey thumbnail."""
    small = Image.fromarray(np.ascontiguousarray(grey, dtype=np.uint8), "L")
    pixels = np.asarray(small.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BICUBIC))
    return str(iscc_lib.gen_image_code_v0(pixels.ravel().tolist(), CODE_BITS)["iscc"])


def image_code(rgb: Image.Image) -> str:
    """``ISCC:EE...``: the ISCC Image-Code of an upright RGB picture."""
    return str(iscc_lib.gen_image_code_v0(image_pixels(rgb), CODE_BITS)["iscc"])


def audio_code(items: np.ndarray) -> str:
    """``ISCC:EI...``: the ISCC Audio-Code of Chromaprint raw items (uint32 as stored)."""
    signed = np.asarray(items, dtype=np.uint32).view(np.int32)
    return str(iscc_lib.gen_audio_code_v0(signed.tolist(), CODE_BITS)["iscc"])
