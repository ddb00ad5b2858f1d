"""Flag siblings that pass the 64 px dense check on structure and grey levels: one layout with
another small badge (refused by where the fine check's differences gather), one layout in
other colours (refused by the per-pixel colour check), colours on a grey work (refused)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.image import ImageIndex
from contentmatch_match.image.align import scale_transform
from contentmatch_match.image.config import DEFAULT as CFG
from contentmatch_match.image.dense import dense_check
from contentmatch_match.image.judges import dense_accepts
from contentmatch_match.image.signals.codes import hamming, informative
from contentmatch_match.image.signals.vertical import vertical_dhash
from contentmatch_match.image.thumbs import Thumb, work_thumbnail
from tests.fixtures.flag_images import (
    BADGES,
    BLUE,
    GREEN,
    ORANGE,
    RED,
    WHITE,
    make_cross_flag,
    make_ensign,
    make_tricolour,
)
from tests.fixtures.images import make_image, to_bytes, transform
from tests.fixtures.thumbs import (
    WHOLE_PICTURE_TRANSFORMS,
    dense_and_fine,
    thumb_of,
    with_far_hashes,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("a,b", [("dot", "plain"), ("plain", "dot")])
def test_a_badge_with_and_without_its_dot_is_refused_where_its_differences_gather(a, b):
    dense, fine = dense_and_fine(make_ensign(a), make_ensign(b))
    assert dense_accepts(dense)
    # ~1 % of the pixels differ, within what the share alone lets through ...
    assert fine is not None and fine.diff <= CFG.fine.max_diff
    # ... but all in one place: a symbol, not resampling noise along edges
    assert fine.cluster > CFG.fine.max_cluster, fine


@pytest.mark.parametrize("name", WHOLE_PICTURE_TRANSFORMS)
@pytest.mark.parametrize("badge", BADGES)
def test_copies_of_an_ensign_keep_their_differences_scattered(badge, name):
    work = make_ensign(badge)
    dense, fine = dense_and_fine(work, transform(work, name, seed=2))
    assert dense_accepts(dense)
    assert fine is not None and fine.diff <= CFG.fine.max_diff
    assert fine.cluster <= CFG.fine.max_cluster, fine


@pytest.mark.parametrize("name", ["jpeg_q20", "brightness_contrast", "blur_noise"])
def test_photo_copies_keep_their_differences_scattered(name):
    work = make_image(11, (480, 360))
    _, fine = dense_and_fine(work, transform(work, name, seed=4))
    assert fine is not None and fine.cluster <= CFG.fine.max_cluster, fine


BADGE_BLUE = (30, 90, 230)


@pytest.mark.parametrize("badge", ["cross", "ring", "dot"])
@pytest.mark.parametrize("blue_first", [True, False])
def test_a_badge_in_the_opposite_colour_is_refused(badge, blue_first):
    """Queensland's blue cross where New South Wales has a red one: under 5 % of the coloured
    pixels move (far below the recolour limit), but the badge's hue is turned round."""
    red, blue = make_ensign(badge), make_ensign(badge, ink=BADGE_BLUE)
    work, query = (blue, red) if blue_first else (red, blue)
    dense, fine = dense_and_fine(work, query)
    assert dense.colour_moved <= CFG.dense.max_colour_moved
    assert fine is not None and fine.diff <= CFG.fine.max_diff  # the same grey levels, nearly
    assert dense.colour_reversed > CFG.dense.max_colour_reversed, dense
    assert not dense_accepts(dense)


@pytest.mark.parametrize("name", WHOLE_PICTURE_TRANSFORMS)
def test_copies_keep_their_hues(name):
    work = make_ensign("cross", ink=BADGE_BLUE)
    dense, _ = dense_and_fine(work, transform(work, name, seed=2))
    assert not dense.colour_reversed > CFG.dense.max_colour_reversed / 4, dense  # (NaN: grey)
    assert dense_accepts(dense)


def test_one_stripe_in_another_colour_is_refused_pixel_by_pixel():
    ireland = make_tricolour((GREEN, WHITE, ORANGE))
    france = make_tricolour((BLUE, WHITE, RED))
    dense, _ = dense_and_fine(ireland, france)
    # A third of the flag moved from green to blue, the orange to red: refused on that alone,
    # even where one cosine for the whole chroma field would let it through.
    assert dense.colour_moved > CFG.dense.max_colour_moved
    assert not dense_accepts(dense)
    assert not dense_accepts(replace(dense, colour=max(dense.colour, CFG.dense.min_colour)))
    assert "dense_colour_moved" in dense.as_evidence()


@pytest.mark.parametrize(
    "name", ["resize_third", "jpeg_q20", "webp_small", "brightness_contrast", "blur_noise"]
)
def test_copies_keep_their_colours_pixel_by_pixel(name):
    for work in (make_tricolour((GREEN, WHITE, ORANGE)), make_image(3, (480, 360))):
        dense, _ = dense_and_fine(work, transform(work, name, seed=1))
        assert dense.colour_moved <= CFG.dense.max_colour_moved, (name, dense)
        assert dense_accepts(dense)


def test_a_grey_copy_of_a_coloured_work_is_not_judged_on_colour():
    work = make_cross_flag(RED)
    dense, _ = dense_and_fine(work, transform(work, "grayscale", seed=1))
    assert math.isnan(dense.colour_moved)
    assert dense_accepts(dense)


def test_colours_on_a_grey_work_are_refused():
    cornwall, savoy = make_cross_flag((0, 0, 0)), make_cross_flag(RED)
    dense, _ = dense_and_fine(cornwall, savoy)
    assert (
        dense.work_chroma < CFG.dense_measure.min_chroma
        and dense.query_chroma > CFG.dense.colour_added
    )
    assert not dense_accepts(dense)
    # the grey work's own copies stay grey
    for name in ("jpeg_q20", "webp_small", "brightness_contrast"):
        dense, _ = dense_and_fine(cornwall, transform(cornwall, name, seed=1))
        assert dense.query_chroma <= CFG.dense.colour_added and dense_accepts(dense)


def test_colour_bled_in_from_beyond_the_overlap_is_not_added_colour():
    """A trimmed coloured border leaves its chroma in the outermost coarse chroma cells of
    the query (one cell is 4 px of the thumbnail, upsampled over more): no added colour."""
    grey = thumb_of(make_image(7, (480, 360)).convert("L").convert("RGB"))
    neutral = np.full_like(grey.chroma, 128)
    rim = neutral.copy()
    rim[0, :], rim[-1, :], rim[:, 0], rim[:, -1] = (180, 90), (180, 90), (180, 90), (180, 90)
    work = work_thumbnail(Thumb(grey.grey, neutral))
    (qh, qw), (wh, ww) = grey.grey.shape, work.grey.shape
    dense = dense_check(work, Thumb(grey.grey, rim), scale_transform(qw, qh, ww, wh))
    assert dense.query_coloured <= CFG.dense.colour_added_share / 4 and dense_accepts(dense), dense
    # ... while the same colour inside the picture is added colour
    inside = neutral.copy()
    inside[10:14, 12:16] = (180, 90)
    dense = dense_check(work, Thumb(grey.grey, inside), scale_transform(qw, qh, ww, wh))
    assert dense.query_coloured > CFG.dense.colour_added_share and not dense_accepts(dense), dense


def test_a_small_coloured_object_on_a_grey_work_is_refused():
    """A red object on a grey page keeps the mean chroma low; the share of strongly coloured
    pixels where the work has none does not stay low."""
    page = Image.new("RGB", (480, 320), WHITE)
    d = ImageDraw.Draw(page)
    d.rectangle((40, 60, 440, 90), fill=(0, 0, 0))
    d.ellipse((160, 120, 320, 280), outline=(0, 0, 0), width=8)
    d.rectangle((200, 150, 280, 200), fill=(101, 101, 101))  # the grey level of RED
    with_red = page.copy()
    ImageDraw.Draw(with_red).rectangle((200, 150, 280, 200), fill=RED)  # 2.6 %, mid-page
    dense, _ = dense_and_fine(page, with_red)
    assert (
        dense.work_chroma < CFG.dense_measure.min_chroma
        and dense.query_chroma <= CFG.dense.colour_added
    )
    assert dense.query_coloured > CFG.dense.colour_added_share
    assert not dense_accepts(dense)
    assert dense_accepts(replace(dense, query_coloured=0.0))  # refused on that alone
    for name in ("jpeg_q20", "webp_small", "blur_noise", "resize_third"):
        dense, _ = dense_and_fine(page, transform(page, name, seed=1))
        assert dense.query_coloured <= CFG.dense.colour_added_share / 4, (name, dense)
        assert dense_accepts(dense), name


def test_index_refuses_flag_siblings_and_keeps_copies():
    idx = ImageIndex()
    works = {
        "ensign_dot": make_ensign("dot"),
        "ireland": make_tricolour((GREEN, WHITE, ORANGE)),
        "cornwall": make_cross_flag((0, 0, 0)),
    }
    for work_id, img in works.items():
        idx.add(work_id, fingerprint_image(to_bytes(img)))
    for sibling in (make_ensign("plain"), make_tricolour((BLUE, WHITE, RED)), make_cross_flag(RED)):
        assert idx.search(fingerprint_image(to_bytes(sibling))) == []
    for work_id, img in works.items():
        # (a crop of a plain tricolour or cross has too few corners for ORB to align it)
        crops = ("crop_10",) if work_id == "ensign_dot" else ()
        for name in ("jpeg_q20", "resize_third", "border_15", "mirror", *crops):
            hits = idx.search(fingerprint_image(to_bytes(transform(img, name, seed=3))))
            assert [h.work_id for h in hits][:1] == [work_id], (work_id, name, hits)


ESTONIA = ((0, 114, 206), (0, 0, 0), (255, 255, 255))


def test_vertical_dhash_holds_horizontal_stripes_through_blur_and_webp():
    flag = make_tricolour(ESTONIA, horizontal=True)
    code = vertical_dhash(thumb_of(flag).grey)  # from the thumbnail, as the index does
    assert informative(code, CFG.whole.min_bits)
    for name in ("blur_noise", "webp_small", "jpeg_q20"):
        q = vertical_dhash(thumb_of(transform(flag, name, seed=5)).grey)
        assert int(hamming(code[None], q)[0]) <= 2, name


def test_vertical_dhash_proposes_what_no_hash_does_and_the_dense_check_decides():
    flag = make_tricolour(ESTONIA, horizontal=True)
    idx = ImageIndex()
    idx.add("estonia", fingerprint_image(to_bytes(flag)))
    for name in ("blur_noise", "webp_small"):
        fp = with_far_hashes(fingerprint_image(to_bytes(transform(flag, name, seed=5))))
        hits = idx.search(fp, second_tier="never")
        assert [h.work_id for h in hits] == ["estonia"], (name, hits)
        assert hits[0].signal == "dhash_v" and hits[0].evidence["verified"] == "dense"
    # Another flag of the same layout in other colours has the same vertical dHash: proposed,
    # and refused by the colour check.
    other = make_tricolour(((0, 87, 183), (255, 255, 255), (214, 0, 28)), horizontal=True)
    assert (
        idx.search(with_far_hashes(fingerprint_image(to_bytes(other))), second_tier="never") == []
    )
