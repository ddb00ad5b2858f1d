"""A picture on a page (a screenshot): the page boxes of the query, the margin box of a work,
and the index finding a flag on a page that ORB has too few corners to find."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.image import ImageIndex
from contentmatch_match.image.page_boxes import margin_box, page_boxes
from tests.fixtures.flag_images import (
    BLUE,
    GREEN,
    ORANGE,
    RED,
    WHITE,
    make_ensign,
    make_tricolour,
)
from tests.fixtures.images import make_image, to_bytes, transform
from tests.fixtures.indexes import compacted_index
from tests.fixtures.thumbs import thumb_of, with_far_hashes

pytestmark = pytest.mark.unit

HUNGARY = (RED, WHITE, GREEN)


def page(picture: Image.Image, at: tuple[int, int], page_grey: int = 246) -> Image.Image:
    """``picture`` on a page with a header bar, a sidebar and lines of text."""
    w, h = picture.size
    pw, ph = int(w * 1.8), int(h * 1.8)
    img = Image.new("RGB", (pw, ph), (page_grey,) * 3)
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, pw, ph // 12), fill=(60, 90, 200))
    d.rectangle((0, ph // 12, pw // 6, ph), fill=(page_grey - 20,) * 3)
    for y in range(ph // 12 + 20, ph, 30):
        d.text((8, y), "news", fill=(90, 90, 90))
    img.paste(picture, at)
    d.text((at[0], at[1] + h + 8), "a caption under the picture", fill=(90, 90, 90))
    return img


def _near(box, want, tol=0.04) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(box, want, strict=True))


def test_page_boxes_find_the_picture_and_not_the_furniture():
    flag = make_tricolour((BLUE, WHITE, RED), size=(300, 200))
    img = page(flag, (160, 70), page_grey=200)
    pw, ph = img.size
    want = (160 / pw, 70 / ph, 300 / pw, 200 / ph)
    boxes = page_boxes(thumb_of(img))
    assert boxes and _near(boxes[0], want), (boxes, want)
    assert len(boxes) == 1  # the header bar, the sidebar and the text lines are no box


def test_a_striped_picture_whose_middle_is_the_page_colour_is_one_box():
    """Hungary on a white page: the white stripe is page colour, the flag falls apart into
    two stripes, and the box holding both is a candidate too."""
    flag = make_tricolour(HUNGARY, size=(300, 200), horizontal=True)
    img = page(flag, (150, 80), page_grey=255)
    pw, ph = img.size
    want = (150 / pw, 80 / ph, 300 / pw, 200 / ph)
    assert any(_near(b, want) for b in page_boxes(thumb_of(img))), page_boxes(thumb_of(img))


def test_a_drawing_on_a_plain_background_is_no_page():
    img = Image.new("RGB", (400, 300), WHITE)
    d = ImageDraw.Draw(img)
    d.rectangle((120, 0, 200, 300), fill=(0, 0, 0))  # a letter's stem, edge to edge
    d.ellipse((220, 100, 330, 210), fill=ORANGE)
    assert page_boxes(thumb_of(img)) == []
    assert page_boxes(thumb_of(make_image(3, (480, 360)))) == []


def _canton_flag(at: tuple[int, int]) -> Image.Image:
    """Manitoba's layout: a red field with a dark bar along its bottom (which makes it read as
    a page), an ensign's canton at ``at`` and a shield in the fly."""
    img = Image.new("RGB", (480, 240), RED)
    img.paste(make_ensign("plain").crop((0, 0, 240, 120)), at)
    d = ImageDraw.Draw(img)
    d.rectangle((0, 228, 480, 240), fill=(40, 40, 40))
    d.ellipse((330, 80, 400, 170), fill=GREEN)
    return img


def test_a_flags_canton_is_no_picture_on_a_page():
    """The canton runs into two edges of the flag: not a picture set on a page."""
    boxes = page_boxes(thumb_of(_canton_flag((0, 0))))
    assert not any(b[0] < 0.02 and b[1] < 0.02 for b in boxes), boxes
    # ... while the same picture set off from the corner is one
    boxes = page_boxes(thumb_of(_canton_flag((24, 20))))
    assert any(_near(b, (24 / 480, 20 / 240, 0.5, 0.5)) for b in boxes), boxes


def test_margin_box_is_the_drawing_inside_a_uniform_margin():
    img = Image.new("RGB", (400, 300), WHITE)
    ImageDraw.Draw(img).rectangle((100, 60, 300, 240), fill=GREEN)
    box = margin_box(thumb_of(img).grey)
    assert box is not None and _near(box, (0.25, 0.2, 0.5, 0.6), tol=0.02), box
    assert margin_box(thumb_of(make_image(3, (480, 360))).grey) is None


@pytest.fixture(scope="module")
def index() -> ImageIndex:
    idx = ImageIndex()
    works = {
        "france": make_tricolour((BLUE, WHITE, RED), size=(300, 200)),
        "hungary": make_tricolour(HUNGARY, size=(300, 200), horizontal=True),
        "photo": make_image(8, (320, 240)),
    }
    for work_id, img in works.items():
        idx.add(work_id, fingerprint_image(to_bytes(img)))
    return idx


@pytest.mark.parametrize("work_id", ["france", "hungary", "photo"])
def test_a_picture_on_a_page_is_found_and_located(index, work_id):
    img = {
        "france": make_tricolour((BLUE, WHITE, RED), size=(300, 200)),
        "hungary": make_tricolour(HUNGARY, size=(300, 200), horizontal=True),
        "photo": make_image(8, (320, 240)),
    }[work_id]
    # (Hungary on a white page: found as the box holding both stripes)
    grey = {"france": 200, "hungary": 255, "photo": 246}[work_id]
    shot = transform(page(img, (170, 60), page_grey=grey), "jpeg_q75", seed=2)
    fp = with_far_hashes(fingerprint_image(to_bytes(shot)))
    hits = index.search(fp, second_tier="never")  # no ORB: the box stage alone
    assert [(h.work_id, h.signal) for h in hits][:1] == [(work_id, "dhash_box")], hits
    pw, ph = shot.size
    w, h = img.size
    q = hits[0].evidence["query_region"]
    assert _near((q["x"], q["y"], q["w"], q["h"]), (170 / pw, 60 / ph, w / pw, h / ph)), q


def test_another_flag_on_a_page_is_not_found(index):
    ireland = make_tricolour((GREEN, WHITE, ORANGE), size=(300, 200))
    fp = with_far_hashes(fingerprint_image(to_bytes(page(ireland, (170, 60)))))
    assert index.search(fp, second_tier="never") == []


def test_whole_codes_survive_compaction():
    idx, imgs = compacted_index(300)
    assert idx._works.dead == 0
    for work_id in ("w1", "w23"):
        fp = with_far_hashes(fingerprint_image(to_bytes(page(imgs[work_id], (170, 60)))))
        hits = idx.search(fp, second_tier="never")
        assert [(h.work_id, h.signal) for h in hits][:1] == [(work_id, "dhash_box")], hits
    gone = with_far_hashes(fingerprint_image(to_bytes(page(imgs["w3"], (170, 60)))))
    assert idx.search(gone, second_tier="never") == []
