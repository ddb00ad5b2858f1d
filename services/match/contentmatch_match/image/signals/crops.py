"""Crop codes: where the grey level rises and falls, for parts of a picture.

A centre crop (a zoom) or a picture on a page shows a part that no hash of the whole query
describes. The index derives, from each work's thumbnail, the crop code of centred crops
(the *crop ladder*, ``CodeParams.crop_rungs``) and of the whole picture and of the drawing
inside a uniform margin (the *whole-picture codes* the page boxes look up). A tiny colour
picture ranks candidates whose codes tie (three-striped flags share one code).
"""

from __future__ import annotations

import cv2
import numpy as np

from contentmatch_match.image.config import DEFAULT, CodeParams, CropProposal, PageBoxParams
from contentmatch_match.image.page_boxes import margin_box
from contentmatch_match.image.tables import TableSpec
from contentmatch_match.image.thumbs import Thumb

CROP_BYTES = 32  # 256 bits: rises and falls along rows and down columns
CROP_LADDER = TableSpec("crop", CROP_BYTES)  # len(crop_rungs) rows per work with a thumbnail
# the whole thumbnail's code, and the code inside a uniform margin when there is one, with
# the box of the work each row stands for
WHOLE = TableSpec("whole", CROP_BYTES, extras={"box": (4, np.float32)})

Box = tuple[float, float, float, float]


def crop_code(grey: np.ndarray, tie: float = DEFAULT.codes.tie) -> np.ndarray:
    """32 bytes: where the grey level rises and where it falls by more than ``tie`` between
    neighbouring cells, along the rows (9 x 8 cells) and down the columns (8 x 9). Falls get
    bits of their own: a plain difference hash cannot tell a fall from a tie, and the
    stripes of a flag are mostly that."""
    g = grey.astype(np.float32)
    rows = cv2.resize(g, (9, 8), interpolation=cv2.INTER_AREA)
    cols = cv2.resize(g, (8, 9), interpolation=cv2.INTER_AREA)
    dr, dc = rows[:, 1:] - rows[:, :-1], cols[1:] - cols[:-1]
    bits = [dr > tie, dr < -tie, dc > tie, dc < -tie]
    return np.packbits(np.concatenate([b.ravel() for b in bits]))


def centre_crop(grey: np.ndarray, keep: float) -> np.ndarray:
    """The centred part of ``grey`` that keeps ``keep`` of each side."""
    h, w = grey.shape
    x0, y0 = round(w * (1.0 - keep) / 2), round(h * (1.0 - keep) / 2)
    return grey[y0 : max(y0 + 2, h - y0), x0 : max(x0 + 2, w - x0)]


def crop_ladder(grey: np.ndarray, cp: CodeParams = DEFAULT.codes) -> np.ndarray:
    """len(crop_rungs) x 32 bytes: the crop code of each rung's centred crop."""
    return np.stack([crop_code(centre_crop(grey, r), cp.tie) for r in cp.crop_rungs])


def rung_box(row: int, rungs: tuple[float, ...]) -> Box:
    """The centred box of the rung a crop-ladder row holds (every work adds a full ladder)."""
    keep = rungs[row % len(rungs)]
    lo = (1.0 - keep) / 2
    return (lo, lo, keep, keep)


def whole_codes(thumb: Thumb, cp: CodeParams, bp: PageBoxParams) -> tuple[np.ndarray, np.ndarray]:
    """The crop codes of the whole thumbnail and, when it has a uniform margin, of the part
    inside it; with the (x, y, w, h) box each stands for."""
    boxes = [(0.0, 0.0, 1.0, 1.0)]
    inner = margin_box(thumb.grey, bp)
    if inner is not None:
        boxes.append(inner)
    codes = np.stack([crop_code(thumb.cropped(b).grey, cp.tie) for b in boxes])
    return codes, np.array(boxes, np.float32)


def zscored(g: np.ndarray, floor: float) -> np.ndarray:
    return (g - g.mean()) / max(float(g.std()), floor)


def tiny(t: Thumb, cp: CropProposal) -> np.ndarray:
    """``tiny`` x ``tiny`` grey levels (zero mean, unit spread: a crop may be re-encoded or
    brightened) and Cb/Cr planes scaled to grey-level units, flattened: the cheap look that
    ranks crop candidates whose codes tie."""
    side = (cp.tiny, cp.tiny)
    g = zscored(
        cv2.resize(t.grey.astype(np.float32), side, interpolation=cv2.INTER_AREA), cp.zscore_floor
    )
    if t.chroma is None or not t.chroma.size:
        c = np.zeros((cp.tiny, cp.tiny, 2), np.float32)
    else:
        c = cv2.resize(t.chroma.astype(np.float32), side, interpolation=cv2.INTER_AREA)
        c = (c - 128.0) / cp.tiny_chroma
    return np.concatenate([g.ravel(), c.ravel()])
