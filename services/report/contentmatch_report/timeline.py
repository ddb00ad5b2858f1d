"""A picture of an audio upload's time axis: which parts matched which registered work.

One row per work given, a coloured bar per matched segment (``query_start..query_end``), a time
axis in mm:ss underneath; a highlighted row is marked and in full colour, others paler. Reports
draw only their own work's row: a report is read by its work's tenant, who may not see the
upload's other matches.

Pure Pillow, deterministic for the same input (same bytes, same sha256 in the signed report).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

WIDTH_PX = 960
ROW_PX = 34
LABEL_PX = 230
MARGIN_PX = 16
AXIS_PX = 34
# Colour-blind-safe palette (Okabe-Ito), one colour per work in match order.
PALETTE = (
    (0, 114, 178),
    (213, 94, 0),
    (0, 158, 115),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
    (120, 120, 120),
)
_TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


@dataclass(frozen=True)
class TimelineRow:
    label: str
    segments: Sequence[tuple[float, float]]  # (query_start, query_end) in seconds
    highlighted: bool = False


def timecode(seconds: float) -> str:
    """``mm:ss.s`` (minutes keep counting past 60: audio uploads are rarely hours long)."""
    tenths = max(0, round(seconds * 10))
    minutes, rest = divmod(tenths, 600)
    return f"{minutes:02d}:{rest // 10:02d}.{rest % 10}"


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Titles are anyone's text: DejaVu covers far more scripts than Pillow's bundled font.
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _tick_step(duration_s: float, max_ticks: int = 12) -> int:
    for step in _TICK_STEPS_S:
        if duration_s / step <= max_ticks:
            return step
    return _TICK_STEPS_S[-1]


def _fit(draw: ImageDraw.ImageDraw, text: str, font: object, width: int) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:  # type: ignore[arg-type]
        return text
    while text and draw.textlength(text + "…", font=font) > width:  # type: ignore[arg-type]
        text = text[:-1]
    return text + "…"


def draw_timeline(duration_s: float, rows: Sequence[TimelineRow]) -> bytes:
    """The PNG bytes of the timeline. ``duration_s`` is the upload's length; segments past it
    stretch the axis rather than fall off the picture."""
    end = max([duration_s, *(e for row in rows for _, e in row.segments)], default=0.0)
    end = max(end, 1.0)
    height = MARGIN_PX * 2 + ROW_PX * max(len(rows), 1) + AXIS_PX
    img = Image.new("RGB", (WIDTH_PX, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    label_font, small_font = _font(14), _font(12)
    x0, x1 = LABEL_PX, WIDTH_PX - MARGIN_PX
    y_axis = MARGIN_PX + ROW_PX * max(len(rows), 1)

    def x_of(t: float) -> int:
        return round(x0 + (x1 - x0) * min(max(t, 0.0), end) / end)

    # Grid and axis first, so bars sit on top.
    step = _tick_step(end)
    for i in range(math.floor(end / step) + 1):
        x = x_of(i * step)
        draw.line((x, MARGIN_PX, x, y_axis), fill=(232, 232, 232), width=1)
        draw.line((x, y_axis, x, y_axis + 5), fill=(90, 90, 90), width=1)
        label = timecode(i * step)[:-2]  # whole seconds on the axis
        tw = draw.textlength(label, font=small_font)
        draw.text((min(x - tw / 2, WIDTH_PX - tw - 2), y_axis + 8), label, (70, 70, 70), small_font)
    draw.line((x0, y_axis, x1, y_axis), fill=(90, 90, 90), width=1)
    draw.text((MARGIN_PX, y_axis + 8), "upload time", (70, 70, 70), small_font)

    for i, row in enumerate(rows):
        top = MARGIN_PX + i * ROW_PX
        colour = PALETTE[i % len(PALETTE)]
        if not row.highlighted and any(r.highlighted for r in rows):
            colour = tuple(round(c + (255 - c) * 0.6) for c in colour)  # type: ignore[assignment]
        if row.highlighted:
            draw.rectangle((0, top + 2, WIDTH_PX, top + ROW_PX - 2), fill=(245, 247, 252))
        text_colour = (20, 20, 20) if row.highlighted else (110, 110, 110)
        mid = top + ROW_PX / 2
        if row.highlighted:  # a drawn marker: the bundled font has no arrow glyphs
            draw.polygon([(4, mid - 5), (4, mid + 5), (11, mid)], fill=colour)
        label = _fit(draw, row.label, label_font, LABEL_PX - MARGIN_PX - 10)
        draw.text((MARGIN_PX, mid), label, text_colour, label_font, anchor="lm")
        draw.rectangle((x0, top + 9, x1, top + ROW_PX - 9), fill=(240, 240, 240))
        for start, stop in row.segments:
            a, b = x_of(start), x_of(stop)
            draw.rectangle((a, top + 6, max(b, a + 2), top + ROW_PX - 6), fill=colour)
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()
