"""The masked, colour-invariant judge and the homography check (everyday image edits)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.image.align import homogeneous, scale_transform
from contentmatch_match.image.config import DEFAULT
from contentmatch_match.image.homography import fit_homography, map_corners, plausible
from contentmatch_match.image.masked import fit_grade, gain_field, masked_check, untone
from contentmatch_match.image.query import ImageQuery
from contentmatch_match.image.thumbs import Thumb, work_thumbnail
from tests.fixtures.images import make_image, to_bytes, transform

pytestmark = pytest.mark.unit

SIZE = (480, 360)


def _thumb(img) -> Thumb:
    thumb = ImageQuery.parse(fingerprint_image(to_bytes(img))).thumb
    assert thumb is not None
    return thumb


_WORK_THUMBS: dict[int, Thumb] = {}


def _judge(work_img, query_img):
    key = id(work_img)
    if key not in _WORK_THUMBS:
        _WORK_THUMBS[key] = work_thumbnail(_thumb(work_img))
    wt, qt = _WORK_THUMBS[key], _thumb(query_img)
    (qh, qw), (wh, ww) = qt.grey.shape, wt.grey.shape
    return masked_check(wt, qt, homogeneous(scale_transform(qw, qh, ww, wh)))


@pytest.fixture(scope="module")
def work():
    return make_image(1, SIZE)


@pytest.mark.parametrize(
    "name",
    [
        "meme_2bands_12",
        "meme_2bands_25",
        "meme_outlined_text",
        "grade_teal_orange_vignette",
        "watermark_text",
    ],
)
def test_everyday_edits_are_explained(work, name):
    check = _judge(work, transform(work, name, seed=1))
    assert check.accepted(), check
    assert check.restored is not None and check.restored_align is not None


def test_bands_are_set_aside_as_bands(work):
    check = _judge(work, transform(work, "meme_2bands_18", seed=1))
    assert check.banded > 0.1 and check.unexplained <= 0.05
    assert check.accepted()


def test_a_grade_keeps_every_block_and_fits_a_small_turn(work):
    check = _judge(work, transform(work, "grade_cool_vignette", seed=1))
    assert check.agree >= 0.95
    assert abs(check.hue_turn) < 10 and check.colour_off < 0.05


def test_another_picture_in_the_middle_is_not_an_overlay(work):
    other = make_image(101, SIZE)
    sibling = work.copy()
    sibling.paste(other.crop((160, 120, 320, 240)), (160, 120))
    check = _judge(work, sibling)
    assert not check.accepted()
    assert check.unexplained > 0.05


def test_unrelated_pictures_do_not_agree(work):
    check = _judge(work, make_image(202, SIZE))
    assert not check.accepted() and check.agree < 0.2


def test_zoom_limits_are_stricter():
    zoom, plain = DEFAULT.masked.zoom, DEFAULT.masked.limits
    assert zoom.max_occluded < plain.max_occluded and zoom.min_agree_share > 0.8
    assert zoom.min_agree_zncc > plain.min_agree_zncc and zoom.min_blocks > plain.min_blocks
    assert zoom.min_overlap < 0.11  # a third of each side shows 0.11 of the work (less erosion)


def test_two_framings_side_by_side_are_another_photo():
    # Another photo of the same scene from one spot, framed further right: the part the two
    # share agrees, but neither lies inside the other as a crop, a zoom or a canvas does.
    scene = make_image(7, (560, 300))
    left, right = scene.crop((0, 0, 400, 300)), scene.crop((160, 0, 560, 300))
    wt, qt = work_thumbnail(_thumb(left)), _thumb(right)
    sq, sw = qt.grey.shape[1] / 400, wt.grey.shape[1] / 400
    H = np.array([[sw / sq, 0, 160 * sw], [0, sw / sq, 0], [0, 0, 1]])
    check = masked_check(wt, qt, H)
    assert check.agree >= 0.9  # the shared part is the same
    assert max(check.overlap, check.query_inside) < DEFAULT.masked.limits.min_contained
    assert not check.accepted()
    # A crop lies inside the work: all of it is on the work.
    ct = _thumb(left.crop((40, 30, 360, 270)))
    sc = ct.grey.shape[1] / 320
    crop = masked_check(wt, ct, np.array([[sw / sc, 0, 40 * sw], [0, sw / sc, 30 * sw], [0, 0, 1]]))
    assert crop.query_inside > 0.9 and crop.accepted()


def _chroma_field(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    wc = rng.uniform(-60, 60, (24, 32, 2)).astype(np.float32)
    wy = rng.uniform(30, 220, (24, 32)).astype(np.float32)
    return wc, wy


def test_grade_model_fits_cast_saturation_turn_and_split_toning():
    wc, wy = _chroma_field(1)
    t = math.radians(12)
    a, b = 0.9 * math.cos(t), 0.9 * math.sin(t)
    y = (wy - 128) / 128
    qc = np.dstack(
        [
            a * wc[..., 0] - b * wc[..., 1] + 6 + 10 * y,
            b * wc[..., 0] + a * wc[..., 1] - 4 - 8 * y,
        ]
    )
    fit = fit_grade(wc, qc, wy, np.ones(wy.shape, bool))
    assert fit.colour_off < 0.01
    assert fit.hue_turn == pytest.approx(12, abs=0.5)
    assert fit.saturation == pytest.approx(0.9, abs=0.02)
    undone = fit.undo(qc.astype(np.float32), wy)
    assert np.abs(undone - wc).max() < 1.0


def test_swapped_colours_are_no_grade():
    # Blue stripe for green (another tricolour): a turn no grade makes, or colours left off.
    wc = np.zeros((24, 30, 2), np.float32)
    wc[:, :10] = (60, -30)  # blue-ish
    wc[:, 20:] = (-20, 70)  # red-ish
    qc = wc.copy()
    qc[:, :10] = (-40, -40)  # green-ish
    wy = np.full((24, 30), 120.0, np.float32)
    fit = fit_grade(wc, qc, wy, np.ones((24, 30), bool))
    assert fit.colour_off > 0.2 or abs(fit.hue_turn) > 30


def test_gain_field_recovers_a_vignette():
    w = make_image(3, (128, 96)).convert("L")
    wa = np.asarray(w, np.float32)
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    g = 1 - 0.5 * (((xx - 64) / 64) ** 2 + ((yy - 48) / 48) ** 2) / 2
    q = wa * g + 10
    fitted = gain_field(wa, q, np.ones(wa.shape, bool))
    assert fitted is not None
    G, C = fitted
    restored = (q - C) / G
    assert np.abs(restored - wa).mean() < 1.0


def test_untone_inverts_a_smooth_curve_and_refuses_a_jump():
    rng = np.random.default_rng(2)
    w = rng.uniform(0, 255, (64, 64)).astype(np.float32)
    q = 255 * (w / 255) ** 0.7
    assert np.abs(untone(w, q, np.ones(w.shape, bool)) - w).mean() < 4
    jumped = w.copy()
    jumped[(w > 96) & (w < 112)] = 250  # one band of levels elsewhere: a symbol, not a curve
    assert np.array_equal(untone(w, jumped, np.ones(w.shape, bool)), jumped)


def _keystone(qw: int, qh: int, degrees: float) -> np.ndarray:
    k = math.tan(math.radians(degrees)) * 0.5
    src = np.float32([[0, 0], [qw, 0], [qw, qh], [0, qh]])
    dst = np.float32([[qw * k, 0], [qw * (1 - k), 0], [qw, qh], [0, qh]]) + 20
    return cv2.getPerspectiveTransform(src, dst)


def test_plausible_homographies():
    assert plausible(np.eye(3), 640, 480)
    assert plausible(_keystone(640, 480, 15), 640, 480)
    mirror = np.array([[-1, 0, 640], [0, 1, 0], [0, 0, 1]], float)
    assert not plausible(mirror, 640, 480)
    assert not plausible(_keystone(640, 480, 70), 640, 480)  # a sliver, not a photo
    tiny = np.diag([0.05, 0.05, 1.0])
    assert not plausible(tiny, 640, 480)
    corners = map_corners(np.eye(3), 10, 5)
    assert corners is not None and corners.tolist() == [[0, 0], [10, 0], [10, 5], [0, 5]]


def test_fit_homography_finds_the_plane_among_outliers():
    rng = np.random.default_rng(5)
    H = _keystone(640, 480, 12)
    src = rng.uniform(0, 640, (120, 2)).astype(np.float32)
    src[:, 1] *= 0.75
    dst = cv2.perspectiveTransform(src.reshape(-1, 1, 2), H).reshape(-1, 2)
    dst[:40] = rng.uniform(0, 640, (40, 2))  # a third are wrong matches
    fit = fit_homography(src, dst, 640, 480, 700, 540)
    assert fit is not None and fit.inliers >= 70
    probe = cv2.perspectiveTransform(np.float32([[[320, 240]]]), fit.H)[0, 0]
    expected = cv2.perspectiveTransform(np.float32([[[320, 240]]]), H)[0, 0]
    assert np.hypot(*(probe - expected)) < 2.0
    assert fit_homography(src[:5], dst[:5], 640, 480, 700, 540) is None
