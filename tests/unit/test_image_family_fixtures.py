"""The everyday-edit transforms of the bench and tests: seeded, and each does what it says."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures.images import FAMILIES, FAMILY_TRANSFORMS, make_image, transform

pytestmark = pytest.mark.unit

SIZE = (320, 240)


@pytest.fixture(scope="module")
def work():
    return make_image(11, SIZE)


def test_families_cover_every_family_transform():
    assert sorted(t for names in FAMILIES.values() for t in names) == sorted(FAMILY_TRANSFORMS)


@pytest.mark.parametrize("name", FAMILY_TRANSFORMS)
def test_family_transforms_are_seeded(work, name):
    a = np.asarray(transform(work, name, seed=3))
    assert np.array_equal(a, np.asarray(transform(work, name, seed=3)))
    assert a.dtype == np.uint8 and a.ndim == 3


def test_meme_bands_cover_top_and_bottom_only(work):
    out = np.asarray(transform(work, "meme_2bands_18", seed=1)).astype(int)
    orig = np.asarray(work).astype(int)
    h = SIZE[1]
    band = round(h * 0.18)
    # Band rows are plain (one colour) apart from their text; the middle is untouched.
    for rows in (slice(0, band), slice(h - band, h)):
        colours = out[rows].reshape(-1, 3)
        modal = np.mean(np.all(colours == colours[0], axis=1))
        assert modal > 0.6
    assert np.array_equal(out[band + 2 : h - band - 2], orig[band + 2 : h - band - 2])
    one = np.asarray(transform(work, "meme_1band_15", seed=1)).astype(int)
    assert np.array_equal(one[h // 2 :], orig[h // 2 :])


@pytest.mark.parametrize(("name", "keep"), [("zoom_50", 0.5), ("zoom_40", 0.4), ("zoom_33", 0.33)])
def test_zoom_keeps_the_centre_blown_up(work, name, keep):
    out = transform(work, name, seed=1)
    assert out.size == work.size
    w, h = SIZE
    cw, ch = round(w * keep), round(h * keep)
    crop = work.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
    ref = np.asarray(crop.resize(SIZE)).astype(float)
    diff = np.abs(np.asarray(out).astype(float) - ref).mean()
    assert diff < 3.0


def test_off_centre_zoom_is_not_centred(work):
    a = np.asarray(transform(work, "zoom_40_off", seed=2)).astype(float)
    b = np.asarray(transform(work, "zoom_40", seed=2)).astype(float)
    assert np.abs(a - b).mean() > 10


def test_vignette_darkens_the_corners_more_than_the_centre(work):
    flat = make_image(11, SIZE).point(lambda _v: 200)
    out = np.asarray(transform(flat, "grade_faded_vignette_strong", seed=1)).astype(float)
    h, w = out.shape[:2]
    centre = out[h // 2 - 5 : h // 2 + 5, w // 2 - 5 : w // 2 + 5].mean()
    corner = out[:10, :10].mean()
    assert corner < 0.5 * centre
    warm = np.asarray(transform(flat, "grade_warm", seed=1)).astype(float)
    assert warm[..., 0].mean() > warm[..., 2].mean() + 20  # red up, blue down


def test_overlays_change_part_of_the_picture(work):
    orig = np.asarray(work).astype(float)
    small = np.abs(np.asarray(transform(work, "logo_small", seed=1)).astype(float) - orig)
    large = np.abs(np.asarray(transform(work, "logo_large", seed=1)).astype(float) - orig)
    text = np.abs(np.asarray(transform(work, "watermark_text", seed=1)).astype(float) - orig)
    changed = [float((d.max(axis=2) > 8).mean()) for d in (small, large, text)]
    assert 0.005 < changed[0] < changed[1] < 0.3
    assert changed[2] > 0.02  # text repeated all over


@pytest.mark.parametrize("name", FAMILIES["perspective"])
def test_perspective_puts_a_tilted_picture_on_a_background(work, name):
    out = np.asarray(transform(work, name, seed=4)).astype(float)
    h, w = out.shape[:2]
    assert w > SIZE[0] and h > SIZE[1]  # background around it
    assert out[:3, :3].reshape(-1, 3).std(axis=0).max() < 20  # a corner is background
