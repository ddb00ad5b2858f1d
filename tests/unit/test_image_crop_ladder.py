"""The crop ladder: centre crops (a zoom, a re-framing) of works that no global hash of the
whole picture describes and that have too few corners for ORB (flags, icons)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.image import ImageIndex
from contentmatch_match.image.config import DEFAULT as CFG
from contentmatch_match.image.signals.codes import POPCOUNT, hamming
from contentmatch_match.image.signals.crops import crop_code, crop_ladder
from tests.fixtures.flag_images import BLUE, GREEN, ORANGE, RED, WHITE, make_ensign, make_tricolour
from tests.fixtures.images import make_image, to_bytes, transform
from tests.fixtures.indexes import compacted_index
from tests.fixtures.thumbs import thumb_of, with_far_hashes

pytestmark = pytest.mark.unit

ESTONIA = ((0, 114, 206), (0, 0, 0), (255, 255, 255))


def centre(img: Image.Image, keep: float) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * keep), round(h * keep)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


def _bits(code) -> int:
    return int(POPCOUNT[code].sum())


def test_crop_code_tells_a_fall_from_a_tie():
    rising = make_tricolour(((0, 0, 0), (128, 128, 128), (255, 255, 255)), horizontal=True)
    falling = rising.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    up, down = crop_code(thumb_of(rising).grey), crop_code(thumb_of(falling).grey)
    # A difference hash of rises only would leave the falling flag blank (all ties).
    assert _bits(down) >= 2 * CFG.whole.min_bits
    assert int(hamming(up[None], down)[0]) >= 2 * CFG.whole.min_bits


@pytest.mark.parametrize("name", ["jpeg_q20", "webp_small", "blur_noise"])
@pytest.mark.parametrize("work", ["photo", "ensign", "estonia"])
def test_copies_of_a_centre_crop_stay_near_their_rung(work, name):
    img = {
        "photo": make_image(5, (560, 420)),
        "ensign": make_ensign("cross"),
        "estonia": make_tricolour(ESTONIA, horizontal=True),
    }[work]
    ladder = crop_ladder(thumb_of(img).grey)
    assert ladder.shape == (len(CFG.codes.crop_rungs), 32)
    q = crop_code(thumb_of(transform(centre(img, 0.6), name, seed=7)).grey)
    d = hamming(ladder, q)
    assert int(d.min()) <= CFG.crop.radius
    if work != "estonia":  # (stripes look alike at every rung: the dense check picks)
        # the rung that keeps 0.574 of each side is the nearest, by far
        assert int(d.argmin()) == 1 and int(d.min()) <= CFG.crop.radius // 2
        assert int(np.sort(d)[1]) >= 2 * int(d.min())


WORKS = {
    "estonia": make_tricolour(ESTONIA, horizontal=True),
    "france": make_tricolour((BLUE, WHITE, RED)),
    "ensign": make_ensign("cross"),
    "photo": make_image(5, (560, 420)),
}


@pytest.fixture(scope="module")
def index() -> ImageIndex:
    idx = ImageIndex()
    for work_id, img in WORKS.items():
        idx.add(work_id, fingerprint_image(to_bytes(img)))
    for i in range(6):  # unrelated works the ladder must not propose or accept
        idx.add(f"other-{i}", fingerprint_image(to_bytes(make_image(100 + i, (480, 360)))))
    return idx


# 0.6: the benchmark's; 0.53 and 0.81: midway between two rungs (7 % off either)
@pytest.mark.parametrize("keep", [0.6, 0.535, 0.81])
@pytest.mark.parametrize("work_id", list(WORKS))
def test_centre_crops_are_found_and_located(index, work_id, keep):
    query = transform(centre(WORKS[work_id], keep), "jpeg_q75", seed=1)
    fp = with_far_hashes(fingerprint_image(to_bytes(query)))  # no global hash proposes it
    hits = index.search(fp, second_tier="never")
    assert [h.work_id for h in hits][:1] == [work_id], hits
    hit = hits[0]
    if hit.signal != "dhash_crop":  # (a vertical dHash may find a striped flag first)
        return
    ev = hit.evidence
    assert ev["verified"] == "dense" and ev["variant"] == "crop"
    assert abs(ev["crop_keep"] / keep - 1) <= 0.03, ev
    region = ev["region"]
    for axis in ("x", "y"):
        assert abs(region[axis] - (1 - keep) / 2) <= 0.03, region
    for side in ("w", "h"):
        assert abs(region[side] - keep) <= 0.04, region


def test_the_ladder_finds_what_nothing_else_does(index):
    """A striped flag's centre: the crop ladder is the only signal that finds it."""
    fp = with_far_hashes(fingerprint_image(to_bytes(centre(WORKS["france"], 0.6))))
    hits = index.search(fp, second_tier="never")
    assert [(h.work_id, h.signal) for h in hits] == [("france", "dhash_crop")]


def test_the_centre_of_a_sibling_flag_is_not_a_crop(index):
    """Another tricolour of the layout: its centre has the same code as France's rung, the
    colours refuse it; an unregistered photo's centre matches nothing."""
    ireland = make_tricolour((GREEN, WHITE, ORANGE))
    for img in (centre(ireland, 0.6), centre(make_image(77, (560, 420)), 0.6)):
        fp = with_far_hashes(fingerprint_image(to_bytes(img)))
        assert index.search(fp, second_tier="never") == []


def test_crop_codes_survive_compaction():
    idx, imgs = compacted_index(200)
    idx.add("w0", fingerprint_image(to_bytes(imgs["w0"])))  # re-registered after the rebuild
    assert idx._works.dead == 0
    for work_id in ("w0", "w1", "w5", "w23"):
        fp = with_far_hashes(fingerprint_image(to_bytes(centre(imgs[work_id], 0.6))))
        hits = idx.search(fp, second_tier="never")
        assert [(h.work_id, h.signal) for h in hits][:1] == [(work_id, "dhash_crop")], hits
    gone = with_far_hashes(fingerprint_image(to_bytes(centre(imgs["w3"], 0.6))))
    assert idx.search(gone, second_tier="never") == []
