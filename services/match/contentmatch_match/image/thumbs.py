"""Thumbnails: what the dense and fine judges compare once a candidate is aligned.

The fingerprint service sends a 128 px grey thumbnail and coarse Cb/Cr planes
(``contentmatch_shared.thumb_payload``); the index keeps, per work, the grey at
``DenseMeasure.work_thumb_side`` px for the dense check and the 128 px grey for the fine one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

from contentmatch_match.image.config import DEFAULT


@dataclass(frozen=True)
class Thumb:
    """A thumbnail: grey levels and (optionally, coarser) Cb/Cr planes, 128 = neutral."""

    grey: np.ndarray
    chroma: np.ndarray | None = None
    # Works only: the grey thumbnail as fingerprinted (up to 128 px), kept for the fine check
    # (``image.fine``) when ``grey`` has been shrunk for the dense check.
    fine: np.ndarray | None = None

    def mirrored(self) -> Thumb:
        c = None if self.chroma is None else self.chroma[:, ::-1]
        return Thumb(self.grey[:, ::-1], c)

    def cropped(self, box: tuple[float, float, float, float]) -> Thumb:
        """Crop to a normalised (x, y, w, h) box, both planes."""

        def crop(a: np.ndarray) -> np.ndarray:
            h, w = a.shape[:2]
            x0, y0 = round(box[0] * w), round(box[1] * h)
            x1 = max(x0 + 2, round((box[0] + box[2]) * w))
            y1 = max(y0 + 2, round((box[1] + box[3]) * h))
            return a[y0:y1, x0:x1]

        return Thumb(crop(self.grey), None if self.chroma is None else crop(self.chroma))

    @property
    def nbytes(self) -> int:
        extra = sum(0 if a is None else a.nbytes for a in (self.chroma, self.fine))
        return int(self.grey.nbytes + extra)


def work_thumbnail(thumb: Thumb, side: int = DEFAULT.dense_measure.work_thumb_side) -> Thumb:
    """The copy the index keeps per work: grey area-averaged to ``side`` (aspect
    kept) for the dense check, and the fingerprinted grey as it came for the fine check."""
    g = thumb.grey
    h, w = g.shape
    f = max(h, w) / side
    fine = None
    if f > 1:
        size = (max(1, round(w / f)), max(1, round(h / f)))
        g = cv2.resize(g, size, interpolation=cv2.INTER_AREA)
        fine = np.ascontiguousarray(thumb.grey, dtype=np.uint8)
    return Thumb(np.ascontiguousarray(g, dtype=np.uint8), thumb.chroma, fine)


_RECORD = struct.Struct("<6H")  # grey h, w; chroma h, w (0: none); fine h, w (0: none)


def thumb_record(t: Thumb) -> bytes:
    """A work thumbnail as the index stores it on disk (``index.blobs``)."""
    g = np.ascontiguousarray(t.grey, np.uint8)
    c = None if t.chroma is None else np.ascontiguousarray(t.chroma, np.uint8)
    f = None if t.fine is None else np.ascontiguousarray(t.fine, np.uint8)
    head = _RECORD.pack(
        *g.shape,
        *(c.shape[:2] if c is not None else (0, 0)),
        *(f.shape if f is not None else (0, 0)),
    )
    return (
        head
        + g.tobytes()
        + (c.tobytes() if c is not None else b"")
        + (f.tobytes() if f is not None else b"")
    )


def thumb_from_record(b: bytes) -> Thumb:
    gh, gw, ch, cw, fh, fw = _RECORD.unpack_from(b)
    o = _RECORD.size
    grey = np.frombuffer(b, np.uint8, gh * gw, o).reshape(gh, gw)
    o += gh * gw
    chroma = None
    if ch:
        chroma = np.frombuffer(b, np.uint8, ch * cw * 2, o).reshape(ch, cw, 2)
        o += ch * cw * 2
    fine = np.frombuffer(b, np.uint8, fh * fw, o).reshape(fh, fw) if fh else None
    return Thumb(grey, chroma, fine)
