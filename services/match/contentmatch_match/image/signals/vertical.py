"""The vertical dHash: a difference hash down the columns, derived from the thumbnail.

dHash compares neighbours along rows, so horizontal stripes (Colombia, Estonia) leave it
blank and put pHash/PDQ coefficients at their median, where blur or WebP flips them. The
same hash taken down the columns of the 128 px grey thumbnail both sides carry holds them;
the index derives it, so no fingerprint changes.
"""

from __future__ import annotations

import cv2
import numpy as np

from contentmatch_match.image.config import DEFAULT
from contentmatch_match.image.tables import TableSpec

DHASH_V = TableSpec("dhash_v", 8, one_per_work=True)  # zeros for works without a thumbnail


def vertical_dhash(grey: np.ndarray, tie: float = DEFAULT.codes.tie) -> np.ndarray:
    """64 bits: 8 columns x 8 row pairs of a 8 x 9 area resampling, bit set where the lower
    cell is brighter by more than ``tie`` grey levels (inside a flat stripe the two cells
    tie, and noise would pick the bit). 8 bytes, as the FAISS codes."""
    small = cv2.resize(grey.astype(np.float32), (8, 9), interpolation=cv2.INTER_AREA)
    return np.packbits((small[1:] > small[:-1] + tie).ravel())
