"""Siblings the grey levels miss: a symbol drawn in the same tones as the one it replaces
(refused by its structure), and a badge along a side of the picture (a side band is not an
overlay). Copies, including a caption banner along the bottom, keep passing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.image import ImageIndex
from contentmatch_match.image.config import DEFAULT as CFG
from contentmatch_match.image.fine import fine_check
from contentmatch_match.image.judges import dense_accepts
from tests.fixtures.flag_images import BADGES, CHARGES, make_ensign, make_shield_ensign
from tests.fixtures.icon_images import SYMBOLS, make_appliance_icon
from tests.fixtures.images import make_image, to_bytes, transform
from tests.fixtures.thumbs import WHOLE_PICTURE_TRANSFORMS, dense_and_fine, full_picture_check

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("a,b", [("drum", "rack"), ("rack", "drum")])
def test_a_symbol_in_the_same_tones_is_refused_by_its_structure(a, b):
    dense, fine = dense_and_fine(make_appliance_icon(a), make_appliance_icon(b))
    assert dense_accepts(dense)
    # The symbols are 30 grey levels from the body: no pixel differs by the grey-level test
    assert (
        fine is not None and fine.diff <= CFG.fine.max_diff and fine.cluster <= CFG.fine.max_cluster
    )
    assert fine.structure > CFG.fine.max_structure, fine


WORKS = {
    **{f"icon-{s}": lambda s=s: make_appliance_icon(s) for s in SYMBOLS},
    **{f"ensign-{b}": lambda b=b: make_ensign(b) for b in BADGES},
    **{f"shield-{c}": lambda c=c: make_shield_ensign(c) for c in CHARGES},
    "photo": lambda: make_image(11, (480, 360)),
}


@pytest.mark.parametrize("name", WHOLE_PICTURE_TRANSFORMS)
@pytest.mark.parametrize("label", WORKS)
def test_copies_keep_their_structure(label, name):
    work = WORKS[label]()
    dense, fine = dense_and_fine(work, transform(work, name, seed=5))
    assert dense_accepts(dense), (label, dense)
    assert fine is not None and fine.structure <= CFG.fine.max_structure, (label, fine)


@pytest.mark.parametrize("a,b", [("bars", "pale"), ("pale", "bars")])
def test_a_side_band_is_not_discounted_as_an_overlay(a, b):
    w, q, dense = full_picture_check(make_shield_ensign(a), make_shield_ensign(b))
    # At 64 px the shield is a band along the right edge, and discounting it leaves a match
    assert dense_accepts(dense) and dense.band == "right"
    fine = fine_check(w, q, dense)
    assert fine is not None and fine.band == ""
    assert fine.diff > CFG.fine.max_diff, fine


def test_a_caption_banner_along_the_bottom_is_still_discounted():
    work = make_shield_ensign("bars")
    w, q, dense = full_picture_check(work, transform(work, "caption_banner", seed=1))
    fine = fine_check(w, q, dense)
    assert fine is not None and fine.band == "bottom"
    assert fine.diff <= CFG.fine.max_diff and fine.structure <= CFG.fine.max_structure
    # ... and the same differences along a side would not be
    side = fine_check(w, q, replace(dense, band="left"))
    assert side is not None and side.band == ""


def test_index_refuses_same_tone_and_side_band_siblings_and_keeps_copies():
    idx = ImageIndex()
    works = {"drum": make_appliance_icon("drum"), "bars": make_shield_ensign("bars")}
    for work_id, img in works.items():
        idx.add(work_id, fingerprint_image(to_bytes(img)))
    for sibling in (make_appliance_icon("rack"), make_shield_ensign("pale")):
        assert idx.search(fingerprint_image(to_bytes(sibling))) == []
    for work_id, img in works.items():
        for name in ("jpeg_q20", "resize_third", "caption_banner", "border_15", "mirror"):
            hits = idx.search(fingerprint_image(to_bytes(transform(img, name, seed=3))))
            assert [h.work_id for h in hits][:1] == [work_id], (work_id, name, hits)
