"""Homography in geometric verification: a photo of a screen or a print.

The ORB tier verifies a similarity transform (rotation, uniform scale, translation). A photo
of a picture on a screen or on paper is a plane seen at an angle: its keystone (one edge
shorter than the opposite one) breaks a similarity, whose RANSAC then keeps only the inliers
of one part of the picture, and the dense check, aligned by that part, sees the rest drift.
A homography (``cv2.findHomography`` with RANSAC) models the plane exactly. It has 8 degrees
of freedom instead of 4, so it is only accepted when it is one a camera makes of a flat
picture (``plausible``): the query frame maps to a convex quadrilateral that keeps its
orientation, opposite sides keep their length within ``max_keystone``, its corners stay
within ``max_corner_skew`` of a right angle, the scale lies in the ORB tier's range, the
rotation within its limit. What it aligns is then judged by the masked judge
(``masked``), whose blocks absorb what a plane model leaves (lens distortion, glare).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from contentmatch_match.image.config import DEFAULT, HomographyParams


@dataclass(frozen=True)
class HomographyFit:
    H: np.ndarray  # 3 x 3, query px -> work px (ORB copies)
    inliers: int  # distinct inlier keypoints
    mask: np.ndarray  # bool per correspondence


def _distinct(pts: np.ndarray) -> int:
    return len(np.unique(np.round(pts).astype(np.int32), axis=0)) if len(pts) else 0


def fit_homography(
    src: np.ndarray,
    dst: np.ndarray,
    qw: int,
    qh: int,
    ww: int,
    wh: int,
    seed: np.ndarray | None = None,
    hp: HomographyParams = DEFAULT.homography,
) -> HomographyFit | None:
    """RANSAC homography from query keypoints ``src`` to work keypoints ``dst`` (n x 2),
    or None when there are too few inliers or it is not one a camera makes. ``seed``, a
    similarity (2 x 3) found before, preselects the correspondences within ``seed_px`` of
    it: with 5 % inliers (a deep zoom among the work's other keypoints) a 4-point RANSAC
    sample is almost never clean, a 2-point similarity's is."""
    if seed is not None:
        err = np.hypot(*(src @ seed[:, :2].T + seed[:, 2] - dst).T)
        near = err <= hp.seed_px
        src, dst = src[near], dst[near]
    if len(src) < hp.min_inliers:
        return None
    H, mask = cv2.findHomography(
        src.reshape(-1, 1, 2).astype(np.float32),
        dst.reshape(-1, 1, 2).astype(np.float32),
        cv2.RANSAC,
        hp.ransac_px,
        maxIters=hp.ransac_iters,
        confidence=hp.ransac_confidence,
    )
    if H is None or mask is None:
        return None
    m = mask.ravel().astype(bool)
    inliers = min(_distinct(src[m]), _distinct(dst[m]))
    if inliers < hp.min_inliers:
        return None
    inl = dst[m]
    if max(np.ptp(inl[:, 0]) / ww, np.ptp(inl[:, 1]) / wh) < hp.min_spread:
        return None
    if not plausible(H, qw, qh, hp):
        return None
    return HomographyFit(H, inliers, m)


def map_corners(H: np.ndarray, w: float, h: float) -> np.ndarray | None:
    """The frame (0, 0)-(w, h) mapped by H, 4 x 2 in order TL, TR, BR, BL; None when a
    corner goes to infinity or behind the camera."""
    pts = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64) @ H.T
    if np.any(pts[:, 2] <= 1e-9):
        return None
    return pts[:, :2] / pts[:, 2:3]


def plausible(H: np.ndarray, qw: int, qh: int, hp: HomographyParams = DEFAULT.homography) -> bool:
    """A flat picture photographed: see the module docstring."""
    c = map_corners(H, qw, qh)
    if c is None:
        return False
    edges = np.roll(c, -1, axis=0) - c  # TL->TR, TR->BR, BR->BL, BL->TL
    cross = (
        edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1]
        - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    )
    if not (np.all(cross > 0) or np.all(cross < 0)):
        return False  # not convex, or folded
    if cross[0] < 0:
        return False  # mirrored (y grows downwards in both frames: orientation is kept)
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    if lengths.min() <= 1e-6:
        return False
    for i, j in ((0, 2), (1, 3)):
        if max(lengths[i], lengths[j]) / min(lengths[i], lengths[j]) > hp.max_keystone:
            return False
    for k in range(4):
        a, b = -edges[k - 1], edges[k]
        cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
        if abs(90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cos))))) > hp.max_corner_skew:
            return False
    area = 0.5 * abs(
        float(np.dot(c[:, 0], np.roll(c[:, 1], -1)) - np.dot(c[:, 1], np.roll(c[:, 0], -1)))
    )
    scale = math.sqrt(area / (qw * qh))
    if not (hp.scale_range[0] <= scale <= hp.scale_range[1]):
        return False
    top = edges[0]
    return abs(math.degrees(math.atan2(top[1], top[0]))) <= hp.max_rotation


class PerspectiveFit:
    """The ORB proposer's local fit (``stages.LocalFit``): a homography of one work's votes,
    seeded by the similarity found before when there is one, and without the seed when that
    finds none."""

    def __init__(self, hp: HomographyParams = DEFAULT.homography) -> None:
        self.hp = hp

    def __call__(
        self,
        src: np.ndarray,
        dst: np.ndarray,
        query_size: tuple[int, int],
        work_size: tuple[int, int],
        seed: np.ndarray | None,
    ) -> tuple[np.ndarray, int] | None:
        (qw, qh), (ww, wh) = query_size, work_size
        fit = fit_homography(src, dst, qw, qh, ww, wh, seed, self.hp)
        if fit is None and seed is not None:
            fit = fit_homography(src, dst, qw, qh, ww, wh, None, self.hp)
        return None if fit is None else (fit.H, fit.inliers)
