"""Dense verification: aligned copies agree, siblings and unrelated pictures do not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.image import ImageIndex
from contentmatch_match.image.config import DEFAULT as CFG
from contentmatch_match.image.dense import dense_check
from contentmatch_match.image.judges import dense_accepts
from contentmatch_match.image.thumbs import Thumb, work_thumbnail
from contentmatch_shared.thumb_payload import decode_chroma, decode_thumb, encode_thumb
from tests.fixtures.flat_images import make_flat_wallpaper, make_plain_gradient
from tests.fixtures.icon_images import make_three_tone_icon
from tests.fixtures.images import make_image, to_bytes, transform
from tests.fixtures.template_images import make_template_sign
from tests.fixtures.thumbs import full_picture_check, thumb_of

pytestmark = pytest.mark.unit

SIZE = (480, 360)


def _check(work: Image.Image, query: Image.Image):
    return full_picture_check(work, query)[2]


@pytest.fixture(scope="module")
def work() -> Image.Image:
    return make_image(21, SIZE)


def _sibling(work: Image.Image, other: Image.Image, box: tuple[int, int, int, int]):
    """The work with one region replaced by another picture's: a template sibling."""
    out = work.copy()
    out.paste(other.crop(box), box[:2])
    return out


def test_thumbnail_payload_round_trip():
    a = (np.arange(12 * 7) % 256).astype(np.uint8).reshape(7, 12)
    c = np.stack([a[::2, ::2], 255 - a[::2, ::2]], axis=2)
    payload = encode_thumb(a, c)
    assert np.array_equal(decode_thumb(payload), a)
    assert np.array_equal(decode_chroma(payload), c)
    assert decode_chroma(encode_thumb(a)) is None
    with pytest.raises(ValueError):
        decode_thumb({"v": 1, "w": 5, "h": 5, "px": payload["px"]})


def test_thumbnail_in_fingerprint_keeps_aspect(work):
    t = fingerprint_image(to_bytes(work)).extra["thumb"]
    assert (t["w"], t["h"], t["cw"], t["ch"]) == (128, 96, 32, 24)
    assert work_thumbnail(Thumb(decode_thumb(t))).grey.shape == (48, 64)


@pytest.mark.parametrize(
    "name", ["resize_third", "jpeg_q20", "brightness_contrast", "grayscale", "blur_noise"]
)
def test_benign_copies_agree(work, name):
    d = _check(work, transform(work, name, seed=3))
    assert d.agree >= 0.95, d
    assert dense_accepts(d)


@pytest.mark.parametrize("size", [64, 256])
def test_a_brightened_icon_is_followed_by_a_tone_curve(size):
    """White stays clipped at 255 while the greys move: no gain/offset maps all three
    levels (13-17 % of the textured pixels differed with one), a monotone curve does."""
    work = make_three_tone_icon(size=size)
    brighter = ImageEnhance.Contrast(ImageEnhance.Brightness(work).enhance(1.25)).enhance(1.3)
    d = _check(work, brighter)
    assert d.agree >= 0.98 and dense_accepts(d), d


def test_a_tone_curve_does_not_swap_tones():
    """Another icon with the ring and the letter in each other's grey: no monotone curve."""
    d = _check(make_three_tone_icon(), make_three_tone_icon(ring=51, letter=127))
    assert not dense_accepts(d), d


def test_small_rotation_is_absorbed_by_refinement(work):
    d = _check(work, transform(work, "rotate_4", seed=3))
    assert d.agree >= 0.9, d


def test_caption_band_is_discounted(work):
    d = _check(work, transform(work, "caption_banner", seed=3))
    assert d.band == "bottom"
    assert d.agree < CFG.dense.accept <= d.agree_band, d


@pytest.mark.parametrize("seed", [1, 3])  # a dark and a light banner
def test_caption_over_a_blank_margin_is_discounted(seed):
    """Clip art with a wide white margin: the banner's text holds more texture than the
    drawing itself. What must agree is the work's texture, which lies outside the band."""
    work = Image.new("RGB", (400, 400), (255, 255, 255))
    work.paste(make_template_sign("dot", size=(150, 135)), (125, 60))
    d = _check(work, transform(work, "caption_banner", seed=seed))
    assert d.band == "bottom"
    assert d.agree < CFG.dense.min_agree <= d.work_agree, d  # the banner's texture disagrees
    assert dense_accepts(d)


def test_sibling_differing_in_the_middle_is_refused(work):
    w, h = SIZE
    sib = _sibling(work, make_image(22, SIZE), (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
    d = _check(work, sib)
    assert not dense_accepts(d), d
    assert d.agree_band < 0.8


def test_unrelated_picture_is_refused(work):
    d = _check(work, make_image(23, SIZE))
    assert d.agree < 0.3, d


def test_recoloured_sibling_is_refused_grey_copy_is_not(work):
    """Same drawing, other colours: grey structure agrees, colour does not. A grey copy
    carries no colour and is judged on structure alone."""
    a = np.asarray(work)
    recoloured = Image.fromarray(np.ascontiguousarray(a[:, :, ::-1]))  # RGB -> BGR swap
    d = _check(work, recoloured)
    assert d.colour < 0.5, d
    assert not dense_accepts(d)
    g = _check(work, transform(work, "grayscale", seed=1))
    assert np.isnan(g.colour) and dense_accepts(g), g


def _sign(symbol: str) -> Image.Image:
    """A road-sign-like template: red triangle frame, a black symbol inside."""
    im = Image.new("RGB", (400, 360), (255, 255, 255))
    d = ImageDraw.Draw(im)
    d.polygon([(200, 20), (380, 340), (20, 340)], outline=(200, 0, 0), width=28)
    if symbol == "arrow":
        d.rectangle((185, 150, 215, 290), fill=(0, 0, 0))
        d.polygon([(150, 160), (250, 160), (200, 110)], fill=(0, 0, 0))
    else:
        d.ellipse((150, 170, 250, 270), outline=(0, 0, 0), width=18)
    return im


def test_sibling_sign_with_another_symbol_is_refused():
    """Same template, another symbol: the frame agrees, the grey levels of the symbol do
    not. A copy of the sign is accepted."""
    d = _check(_sign("arrow"), _sign("ring"))
    assert d.diff > 0.05, d
    assert not dense_accepts(d)
    copy = _check(_sign("arrow"), transform(_sign("arrow"), "jpeg_q20", seed=1))
    assert copy.diff < 0.02 and dense_accepts(copy), copy


def test_crop_compared_through_its_transform(work):
    w, h = SIZE
    crop = work.crop((w // 5, h // 5, 4 * w // 5, 4 * h // 5))
    wt = work_thumbnail(thumb_of(work))
    qt = thumb_of(crop)
    # query thumbnail px -> work thumbnail px: scale to the crop's size, shift to its corner
    s = (0.6 * wt.grey.shape[1]) / qt.grey.shape[1]
    A = np.array([[s, 0, 0.2 * wt.grey.shape[1]], [0, s, 0.2 * wt.grey.shape[0]]])
    d = dense_check(wt, qt, A)
    assert d.overlap == pytest.approx(0.36, abs=0.05)
    assert d.query_overlap == pytest.approx(1.0, abs=0.05)  # all of the crop lies on the work
    assert d.agree >= 0.9, d
    assert dense_accepts(d)
    shifted = A.copy()
    shifted[0, 2] += 0.15 * wt.grey.shape[1]  # a wrong alignment must not agree
    assert dense_check(wt, qt, shifted).agree < 0.5


def test_index_refuses_a_sibling_the_hashes_propose(work):
    """A template sibling close in pHash is not reported; the real copy still is."""
    w, h = SIZE
    idx = ImageIndex()
    idx.add("work", fingerprint_image(to_bytes(work)))
    sib = _sibling(work, make_image(24, SIZE), (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
    assert idx.search(fingerprint_image(to_bytes(sib))) == []
    hits = idx.search(fingerprint_image(to_bytes(transform(work, "jpeg_q20", seed=1), "PNG")))
    assert [h.work_id for h in hits] == ["work"]
    assert hits[0].evidence["verified"] == "dense"
    assert hits[0].evidence["dense_agree"] >= 0.95


def test_flat_wallpaper_is_decided_by_its_faint_detail():
    """Two near-flat pictures have no texture to compare; the faint shapes over the gradient
    decide: a copy's correlate, other shapes over the same gradient do not, and a plain
    gradient has none to offer (undecided, so refused by the index's rule)."""
    work = make_flat_wallpaper(3)
    copy = _check(work, transform(work, "jpeg_q20", seed=3))
    assert copy.flat and copy.smooth >= 0.85, copy
    assert dense_accepts(copy)
    assert copy.as_evidence()["dense_smooth"] >= 0.85
    other = _check(work, make_flat_wallpaper(3, shapes_seed=77))
    assert other.flat and other.smooth < 0.5, other
    assert not dense_accepts(other)
    plain = make_plain_gradient(3)
    d = _check(plain, transform(plain, "jpeg_q75", seed=3))
    assert math.isnan(d.smooth) and not dense_accepts(d)


def test_steep_gradients_in_the_same_direction_do_not_agree():
    """Structure is compared beyond each side's smooth gradient: two different pictures that
    share a steep gradient (grey, so colour cannot tell them apart) are not a copy."""
    a = ImageOps.grayscale(make_flat_wallpaper(5)).convert("RGB")
    arr = np.asarray(a, np.float32)
    steep = np.linspace(-60, 60, arr.shape[1], dtype=np.float32)[None, :, None]
    a = Image.fromarray(np.clip(arr + steep, 0, 255).astype(np.uint8))
    b = np.asarray(ImageOps.grayscale(make_flat_wallpaper(5, shapes_seed=9)), np.float32)
    b = Image.fromarray(np.clip(b[..., None] + steep, 0, 255).astype(np.uint8).repeat(3, 2))
    assert not dense_accepts(_check(a, b))
    assert dense_accepts(_check(a, transform(a, "blur_noise", seed=1)))


def test_pictures_overlapping_side_by_side_are_not_copies(work):
    """A drawing that shares half of itself with a work (a glyph with its subscript on the
    other side, aligned on the glyph) is neither a crop nor a canvas of it."""
    w, h = SIZE
    other = make_image(77, SIZE)
    query = Image.new("RGB", SIZE)
    query.paste(work.crop((w // 2, 0, w, h)), (0, 0))  # the work's right half, on the left
    query.paste(other.crop((0, 0, w // 2, h)), (w // 2, 0))  # something else beside it
    wt = work_thumbnail(thumb_of(work))
    qt = thumb_of(query)
    s = wt.grey.shape[1] / qt.grey.shape[1]
    A = np.array([[s, 0, 0.5 * wt.grey.shape[1]], [0, s, 0]])  # aligned on the shared half
    d = dense_check(wt, qt, A)
    assert d.overlap == pytest.approx(0.5, abs=0.06)
    assert d.query_overlap == pytest.approx(0.5, abs=0.06)
    assert d.agree_band >= CFG.dense.accept  # where they overlap, they agree ...
    assert not dense_accepts(d)  # ... but half of each lies outside the other
