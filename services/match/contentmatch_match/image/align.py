"""Alignments: 2x3 transforms from a query thumbnail's pixels to a work thumbnail's.

A proposer says how a candidate lines up (a scaling, a mirror, a trimmed border, a crop or a
box of the work, a RANSAC similarity); the judges warp the query accordingly, and ECC may
refine it by a few pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from contentmatch_match.image.config import DenseMeasure


def scale_transform(qw: int, qh: int, ww: int, wh: int) -> np.ndarray:
    """Query thumbnail px -> work thumbnail px when both show the same full picture."""
    return np.array([[ww / qw, 0.0, 0.0], [0.0, wh / qh, 0.0]], dtype=np.float64)


def transform_scale(A: np.ndarray) -> float:
    """The linear scale of a 2x3 transform (geometric mean of its two axes)."""
    return float(np.sqrt(abs(np.linalg.det(A[:, :2]))))


def homogeneous(A: np.ndarray) -> np.ndarray:
    """A 2x3 transform as 3x3, for composing."""
    return np.vstack([A, [0, 0, 1]])


def shrink_query(
    q: np.ndarray, A: np.ndarray, below: float, margin: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shrink the query first when ``A`` shrinks it below ``below`` (warpAffine alone
    aliases), to ``margin`` times the size ``A`` shows it at: (query, transform from it,
    3x3 original query px -> its px)."""
    s = transform_scale(A)
    shrink = np.eye(3)
    if s < below:
        h, w = q.shape[:2]
        nw, nh = max(8, round(w * s * margin)), max(8, round(h * s * margin))
        shrink = np.diag([nw / w, nh / h, 1.0])
        q = cv2.resize(q, (nw, nh), interpolation=cv2.INTER_AREA)
        A = A @ np.linalg.inv(shrink)
    return q, A, shrink


def after_ecc(A: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """ECC found W with work(x) ~ warped(W x): the aligned transform is W^-1 A."""
    return (np.linalg.inv(homogeneous(corr.astype(np.float64))) @ homogeneous(A))[:2]


def warp(q: np.ndarray, A: np.ndarray, ww: int, wh: int) -> tuple[np.ndarray, np.ndarray]:
    warped = cv2.warpAffine(
        q, A, (ww, wh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    ones = np.ones(q.shape[:2], np.float32)
    mask = cv2.warpAffine(ones, A, (ww, wh), flags=cv2.INTER_LINEAR, borderValue=0) > 0.99
    return warped, mask


def refine_ecc(
    work: np.ndarray, warped: np.ndarray, mask: np.ndarray, dm: DenseMeasure
) -> np.ndarray | None:
    """ECC refinement (work <- warped query grey), a 2x3 affine correction or None."""
    if mask.mean() < dm.ecc_min_mask:
        return None
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        _cc, warp = cv2.findTransformECC(
            work,
            warped,
            warp,
            cv2.MOTION_AFFINE,
            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, dm.ecc_iters, 1e-4),
            mask.astype(np.uint8),
            3,
        )
    except cv2.error:
        return None
    # A correction of a few pixels and a few degrees is alignment; more is the ECC wandering.
    shift, linear = np.abs(warp[:, 2]).max(), np.abs(warp[:, :2] - np.eye(2)).max()
    if shift > dm.ecc_max_shift or linear > dm.ecc_max_linear:
        return None
    return warp


def onto(
    box: tuple[float, float, float, float],
    query_shape: tuple[int, ...],
    work_shape: tuple[int, ...],
) -> np.ndarray:
    """2x3: a whole query thumbnail (``query_shape``) onto ``box`` (normalised x, y, w, h) of
    a work thumbnail (``work_shape``)."""
    (qh, qw), (wh, ww) = query_shape[:2], work_shape[:2]
    x, y, bw, bh = box
    return np.array([[bw * ww / qw, 0.0, x * ww], [0.0, bh * wh / qh, y * wh]])


def map_region(M: np.ndarray, qw: int, qh: int, ww: int, wh: int) -> dict[str, float]:
    """The query frame (qw x qh) mapped through ``M`` into the work's (ww x wh), normalised
    and clipped: where in the work the match lies."""
    corners = np.array([[0, 0], [qw, 0], [0, qh], [qw, qh]], dtype=np.float64)
    mapped = corners @ M[:, :2].T + M[:, 2]
    x0 = float(np.clip(mapped[:, 0].min() / ww, 0, 1))
    x1 = float(np.clip(mapped[:, 0].max() / ww, 0, 1))
    y0 = float(np.clip(mapped[:, 1].min() / wh, 0, 1))
    y1 = float(np.clip(mapped[:, 1].max() / wh, 0, 1))
    return {"x": round(x0, 4), "y": round(y0, 4), "w": round(x1 - x0, 4), "h": round(y1 - y0, 4)}
