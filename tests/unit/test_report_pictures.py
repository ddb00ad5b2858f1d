"""The evidence pictures: thumbnails with the matched region, and the audio timeline."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from contentmatch_report.thumbnails import (
    REGION_COLOUR,
    THUMBNAIL_PX,
    ThumbnailError,
    make_base_thumbnail,
    make_thumbnail,
    normalised_region,
    thumbnail_from_base,
)
from contentmatch_report.timeline import LABEL_PX, PALETTE, TimelineRow, draw_timeline, timecode
from tests.fixtures.images import make_image, to_bytes


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGB")


def _is_red(pixel: tuple[int, int, int]) -> bool:
    r, g, b = pixel
    return r > 180 and g < 110 and b < 110


def test_thumbnail_is_a_small_jpeg_keeping_the_aspect_ratio() -> None:
    data = make_thumbnail(to_bytes(make_image(3, (1600, 900)), "JPEG", quality=90))
    assert data[:3] == b"\xff\xd8\xff"
    img = _open(data)
    assert max(img.size) == THUMBNAIL_PX
    assert abs(img.width / img.height - 1600 / 900) < 0.02
    assert len(data) < 60_000


def test_region_is_outlined_where_the_matcher_says() -> None:
    source = to_bytes(Image.new("RGB", (800, 600), (40, 160, 60)))
    img = _open(make_thumbnail(source, {"x": 0.25, "y": 0.5, "w": 0.5, "h": 0.25}))
    w, h = img.size
    assert _is_red(img.getpixel((w // 2, h // 2 + 1)))  # top edge of the box, mid-way across
    assert _is_red(img.getpixel((w // 4 + 1, round(h * 0.62))))  # left edge
    assert not _is_red(img.getpixel((w // 2, round(h * 0.62))))  # inside stays the picture
    assert not _is_red(img.getpixel((5, 5)))


@pytest.mark.parametrize(
    "region",
    [
        None,
        {},
        {"x": "a"},
        {"x": 0, "y": 0, "w": 1, "h": 1},
        {"x": 0.5, "y": 0.5, "w": 0, "h": 0.2},
    ],
)
def test_absent_whole_or_malformed_regions_draw_nothing(region: object) -> None:
    source = to_bytes(Image.new("RGB", (400, 300), (40, 160, 60)))
    img = _open(make_thumbnail(source, region))
    pixels = np.asarray(img).reshape(-1, 3)
    assert not any(_is_red(tuple(int(v) for v in p)) for p in pixels[::7])


def test_region_is_clipped_to_the_picture() -> None:
    assert normalised_region({"x": -0.2, "y": 0.9, "w": 0.5, "h": 0.5}) == (0.0, 0.9, 0.3, 1.0)
    assert REGION_COLOUR[0] > 200


def test_thumbnails_are_deterministic_and_refuse_non_images() -> None:
    source = to_bytes(make_image(5), "PNG")
    assert make_thumbnail(source, {"x": 0.1, "y": 0.1, "w": 0.3, "h": 0.3}) == make_thumbnail(
        source, {"x": 0.1, "y": 0.1, "w": 0.3, "h": 0.3}
    )
    with pytest.raises(ThumbnailError):
        make_thumbnail(b"RIFF....WAVEfmt not an image")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_work_thumbnail_from_its_cached_base_is_the_same_jpeg(fmt: str) -> None:
    source = to_bytes(make_image(7, (1000, 700)), fmt)
    base = make_base_thumbnail(source)
    assert max(_open(base).size) == THUMBNAIL_PX
    for region in (None, {"x": 0.2, "y": 0.1, "w": 0.5, "h": 0.6}):
        assert thumbnail_from_base(base, region) == make_thumbnail(source, region)


def test_a_base_thumbnail_must_be_a_small_rgb_png() -> None:
    with pytest.raises(ThumbnailError):  # an original, not a base
        thumbnail_from_base(to_bytes(make_image(7, (1000, 700)), "PNG"))
    with pytest.raises(ThumbnailError):
        thumbnail_from_base(to_bytes(make_image(7, (200, 100)), "JPEG"))
    with pytest.raises(ThumbnailError):
        thumbnail_from_base(b"not a picture")


def test_timecodes() -> None:
    assert timecode(0) == "00:00.0"
    assert timecode(61.26) == "01:01.3"
    assert timecode(59.96) == "01:00.0"
    assert timecode(3725.0) == "62:05.0"


def test_timeline_draws_a_bar_per_segment_at_its_time() -> None:
    rows = [
        TimelineRow("Work A", [(0.0, 30.0)], highlighted=True),
        TimelineRow("Work B", [(30.0, 45.0), (50.0, 60.0)]),
    ]
    png = draw_timeline(60.0, rows)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png == draw_timeline(60.0, rows)  # deterministic: same sha256 on a replay
    img = _open(png)
    # Row geometry from the module: rows start at MARGIN_PX, ROW_PX tall, bars from LABEL_PX.
    from contentmatch_report import timeline as t

    def at(seconds: float, row: int) -> tuple[int, int, int]:
        x = round(t.LABEL_PX + (img.width - t.MARGIN_PX - t.LABEL_PX) * seconds / 60.0)
        return img.getpixel((x, t.MARGIN_PX + row * t.ROW_PX + t.ROW_PX // 2))

    assert at(15, 0) == PALETTE[0]  # highlighted: full colour
    assert at(40, 0) != PALETTE[0]
    assert at(40, 1) != PALETTE[1] and at(40, 1)[0] > PALETTE[1][0]  # paler: not this report's
    assert at(47.5, 1) == (240, 240, 240)  # the gap between B's two segments
    assert at(55, 1) == at(40, 1)


def test_timeline_axis_stretches_to_segments_past_the_duration() -> None:
    img = _open(draw_timeline(0.0, [TimelineRow("X", [(0.0, 12.0)])]))
    assert img.width == 960


def test_an_audio_reports_timeline_draws_only_its_own_work() -> None:
    from datetime import UTC, datetime

    from contentmatch_report.evidence_pictures import EvidencePictureMaker
    from contentmatch_report.timeline import AXIS_PX, MARGIN_PX, ROW_PX
    from contentmatch_shared.events import Match, ObjectRef, UploadMatched, UploadMetadata

    def match(work_id: str, start: float, end: float) -> Match:
        return Match.model_validate({
            "work_id": work_id, "kind": "work", "title": f"T {work_id}", "tenant": work_id,
            "score": 0.9, "policy": "block", "media_type": "audio", "signal": "chromaprint",
            "segments": [{"query_start": start, "query_end": end, "ref_start": 0,
                          "ref_end": end - start}],
        })  # fmt: skip

    now = datetime(2026, 12, 7, tzinfo=UTC)
    result = UploadMatched(
        upload_id="upl_1", tenant="tube", media_type="audio",
        object=ObjectRef(bucket="b", key="k"), metadata=UploadMetadata(),
        matches=[match("w1", 0, 20), match("w2", 20, 40)],
        submitted_at=now, matched_at=now, duration_s=40.0,
    )  # fmt: skip
    made = asyncio.run(EvidencePictureMaker(None, None).for_result(result))  # type: ignore[arg-type]
    for work_id, start in (("w1", 0), ("w2", 20)):
        (picture,) = made[work_id].pictures
        img = _open(picture.data)
        assert img.height == MARGIN_PX * 2 + ROW_PX + AXIS_PX  # one row: this report's work
        x_of = round(LABEL_PX + (img.width - MARGIN_PX - LABEL_PX) * (start + 10) / 40)
        assert img.getpixel((x_of, MARGIN_PX + ROW_PX // 2)) == PALETTE[0]
