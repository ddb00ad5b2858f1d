"""Fine check: template siblings that pass the 64 px dense check are refused at 128 px,
while copies (re-encoded, resized, blurred, captioned) still pass."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.image import ImageIndex
from contentmatch_match.image.config import DEFAULT as CFG
from contentmatch_match.image.dense import DenseCheck, dense_check
from contentmatch_match.image.fine import fine_check
from contentmatch_match.image.judges import dense_accepts
from contentmatch_match.image.pixels import tone_mapped
from contentmatch_match.image.thumbs import work_thumbnail
from tests.fixtures.flat_images import make_flat_wallpaper
from tests.fixtures.images import make_image, to_bytes, transform
from tests.fixtures.template_images import SYMBOLS, make_template_sign
from tests.fixtures.thumbs import WHOLE_PICTURE_TRANSFORMS, dense_and_fine, thumb_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("a,b", list(itertools.permutations(SYMBOLS, 2)))
def test_template_siblings_pass_the_dense_check_but_not_the_fine_one(a, b):
    dense, fine = dense_and_fine(make_template_sign(a), make_template_sign(b))
    assert dense_accepts(dense)  # what made them false positives before
    assert fine is not None and fine.diff > CFG.fine.max_diff


@pytest.mark.parametrize("name", WHOLE_PICTURE_TRANSFORMS)
@pytest.mark.parametrize("kind", ["photo", "sign"])
def test_copies_pass_the_fine_check(kind, name):
    work = make_image(5, (480, 360)) if kind == "photo" else make_template_sign("cross")
    dense, fine = dense_and_fine(work, transform(work, name, seed=2))
    assert dense_accepts(dense)
    assert fine is not None and fine.diff <= CFG.fine.max_diff, fine


def test_an_edge_band_is_discounted_only_when_it_looks_like_an_overlay():
    work = make_template_sign("cross")
    # A caption banner differs all along the bottom edge: an overlay, discounted.
    dense, fine = dense_and_fine(work, transform(work, "caption_banner", seed=2))
    assert dense.band == "bottom" and fine is not None
    assert fine.band == "bottom" and fine.band_span >= 0.9 and fine.diff <= CFG.fine.max_diff
    # A small mark near a corner (math_lsub ~ math_lsup) sits in a band the dense check may
    # discount, but it does not span the edge: it counts.
    dense, fine = dense_and_fine(work, make_template_sign("cross", corner_mark=True))
    assert dense.band and dense_accepts(dense)
    assert fine is not None and fine.band == "" and fine.band_span < 0.5
    assert fine.diff > CFG.fine.max_diff


def test_fine_check_steps_aside_without_a_fine_thumbnail_or_on_flat_pictures():
    small = make_template_sign("bar", size=(60, 54))  # not shrunk: nothing finer to keep
    w = work_thumbnail(thumb_of(small))
    assert w.fine is None
    dense = DenseCheck(1.0, 1.0, 0.0, 1.0, "", 1.0, 1.0, align=np.eye(2, 3))
    assert fine_check(w, thumb_of(small), dense) is None
    flat = make_flat_wallpaper(1)
    d, fine = dense_and_fine(flat, transform(flat, "jpeg_q75", seed=1))
    assert d.flat and fine is None


def test_fine_thumbnail_is_counted_in_index_memory():
    work = work_thumbnail(thumb_of(make_template_sign("dot")))
    assert work.fine is not None and work.fine.shape == (115, 128)
    assert work.nbytes == work.grey.nbytes + work.chroma.nbytes + work.fine.nbytes


def test_index_refuses_template_siblings_and_keeps_copies():
    idx = ImageIndex()
    signs = {s: make_template_sign(s) for s in SYMBOLS[:2]}
    for s, img in signs.items():
        idx.add(s, fingerprint_image(to_bytes(img)))
    for other in SYMBOLS[2:]:
        assert idx.search(fingerprint_image(to_bytes(make_template_sign(other)))) == []
    assert (
        idx.search(fingerprint_image(to_bytes(make_template_sign("bar", corner_mark=True)))) == []
    )
    for s, img in signs.items():
        for name in ("jpeg_q20", "resize_third", "caption_banner", "crop_10", "border_15"):
            hits = idx.search(fingerprint_image(to_bytes(transform(img, name, seed=3))))
            assert [h.work_id for h in hits] == [s], (s, name, hits)
            assert hits[0].evidence["fine_diff"] <= CFG.fine.max_diff


def test_fine_check_steps_aside_when_the_query_shows_the_work_small():
    """A work pasted at 40 % of a canvas shows it at ~50 px in the query's 128 px thumbnail:
    nothing finer than the dense check's 64 px to compare, only resampling differences."""
    work = make_template_sign("dot")
    canvas = Image.new("RGB", (1000, 900), (40, 60, 90))
    canvas.paste(work.resize((400, 360)), (300, 270))
    w = work_thumbnail(thumb_of(work))
    q = thumb_of(canvas)
    f = q.grey.shape[1] / 1000  # canvas px -> query thumbnail px
    s = w.grey.shape[1] / (400 * f)  # query thumbnail px -> work thumbnail px
    A = np.array([[s, 0, -300 * f * s], [0, s, -270 * f * s]])
    dense = dense_check(w, q, A)
    assert dense_accepts(dense) and dense.overlap > 0.9
    assert fine_check(w, q, dense) is None


def test_a_tone_curve_that_flattens_the_work_is_no_model():
    """Where a sibling's symbol sits the query is mostly background: the median tone curve
    would map the work's black to white and flatten it, and a flat work "explains" every
    pixel. Such a curve is no model; a brightness change still is one."""
    w = np.full((64, 64), 250, np.float32)
    w[10:30, 10:30] = 10
    q = np.full((64, 64), 250, np.float32)
    q[34:54, 34:54] = 10  # the other symbol, elsewhere
    everywhere = np.ones(w.shape, bool)
    assert np.array_equal(tone_mapped(w, q, everywhere), w)
    brighter = np.clip(w * 0.8 + 40, 0, 255)
    assert not np.array_equal(tone_mapped(w, brighter, everywhere), w)
