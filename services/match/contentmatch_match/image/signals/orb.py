"""ORB local features: the descriptors' table and the RANSAC similarity that aligns them.

ORB descriptors (32 bytes) of every work are kept with each keypoint's position in the ORB
table (``image.orb_table``: an inverted file of descriptor keys, the features on disk); a
query's descriptors vote for works, and a RANSAC similarity (rotation + uniform scale +
translation, ``cv2.estimateAffinePartial2D``) keeps only geometrically consistent inliers,
which is what keeps "naive ORB" from matching unrelated images. The wire format is
``contentmatch_shared.orb_payload``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from contentmatch_match.image.config import OrbParams
from contentmatch_shared.orb_payload import decode_orb


@dataclass(frozen=True)
class OrbFeatures:
    desc: np.ndarray  # n x 32 uint8
    kp: np.ndarray  # n x 2 float32, px of the ORB copy
    width: int
    height: int


def orb_features(payload: object) -> OrbFeatures | None:
    if not payload:
        return None
    return OrbFeatures(*decode_orb(payload))  # type: ignore[arg-type]


@cache
def matcher() -> cv2.BFMatcher:
    return cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)


@cache
def _nearest() -> cv2.BFMatcher:
    return cv2.BFMatcher(cv2.NORM_HAMMING)


def nearest_descriptors(
    query: np.ndarray, work: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """(query index, work index) of each query descriptor's nearest work descriptor within
    ``radius`` bits (exact, brute force over one work's few hundred)."""
    if not len(query) or not len(work):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ms = _nearest().match(query, np.ascontiguousarray(work))
    pairs = [(m.queryIdx, m.trainIdx) for m in ms if m.distance <= radius]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = np.array(pairs, np.int64)
    return a[:, 0], a[:, 1]


@dataclass(frozen=True)
class Similarity:
    """A RANSAC similarity query ORB px -> work ORB px and its distinct inliers."""

    inliers: int
    M: np.ndarray  # 2 x 3
    mask: np.ndarray  # which correspondences are inliers

    @property
    def scale(self) -> float:
        return float(np.hypot(self.M[0, 0], self.M[1, 0]))

    @property
    def rotation_deg(self) -> float:
        return float(np.degrees(np.arctan2(self.M[1, 0], self.M[0, 0])))


def similarity(
    src: np.ndarray,
    dst: np.ndarray,
    ww: int,
    wh: int,
    op: OrbParams,
    min_inliers: int = 0,
    dense: bool = False,
) -> Similarity | None:
    """RANSAC similarity query -> work, or None when not plausible.

    Without a dense check to follow, the inliers must span ``min_spread`` of the work in both
    directions (a shared logo or line of text gives a compact cluster); with one, a span in
    one direction suffices (a boomerang, a flag's band), the dense check judges the rest."""
    min_inliers = min_inliers or op.min_inliers
    if len(src) < op.min_votes:
        return None
    M, mask = cv2.estimateAffinePartial2D(
        src.reshape(-1, 1, 2),
        dst.reshape(-1, 1, 2),
        method=cv2.RANSAC,
        ransacReprojThreshold=op.ransac_px,
        maxIters=op.ransac_iters,
        confidence=op.ransac_confidence,
        refineIters=op.ransac_refine,
    )
    if M is None or mask is None:
        return None
    m = mask.ravel().astype(bool)
    # Count distinct work keypoints among inliers (many-to-one matches inflate counts).
    dpts = np.round(dst[m]).astype(np.int32)
    spts = np.round(src[m]).astype(np.int32)
    inliers = min(len(np.unique(dpts, axis=0)), len(np.unique(spts, axis=0))) if m.any() else 0
    if inliers < min_inliers:
        return None
    found = Similarity(inliers, M, m)
    if not (op.scale_range[0] <= found.scale <= op.scale_range[1]):
        return None
    if abs(found.rotation_deg) > op.max_rotation:
        return None
    inl = dst[m]
    spread = (np.ptp(inl[:, 0]) / ww, np.ptp(inl[:, 1]) / wh)
    if (max(spread) if dense else min(spread)) < op.min_spread:
        return None
    return found
