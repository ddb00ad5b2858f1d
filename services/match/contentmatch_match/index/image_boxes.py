"""Where a picture lies inside a page: the boxes the index looks up as whole pictures.

A screenshot, a web page or a post shows the work as one rectangle among page furniture: a
header bar, a sidebar, lines of text, the page colour around it. ORB finds such a work by
its corners, but a flag or an icon has few, and the text of the page has many. Found as a
box, the work is compared whole (its code looked up among the works' whole-picture codes,
then the dense check aligned box to work).

``page_boxes`` works on the query's thumbnail (128 px grey, coarse chroma):
  * the page's grey level is the commonest of the outer ring;
  * pixels away from it are content, except rows or columns that are content almost all the
    way across (bars, a sidebar) and strokes thinner than ``STROKE_PX`` (text);
  * what is left is closed over small gaps (one drawing's parts), and the bounding boxes of
    the largest connected parts are the candidates.

``margin_box`` is the work side: the box inside a uniform margin (clip art on a white page),
so that a work shown on a page of its own background colour, whose box is then its drawing
only, is still compared as it was drawn.
"""

from __future__ import annotations

import cv2
import numpy as np

from contentmatch_match.index.image_verify import Thumb

RING_PX = 2  # outer rows and columns that tell the page colour
PAGE_TOL = 12.0  # grey levels from the page's that make content
BAR_SHARE = 0.85  # a row or column that is content this far across is page furniture
STROKE_PX = 3  # content thinner than this (at 128 px) is text or a rule, not a picture
JOIN_PX = 3  # gaps this wide (at 128 px) inside one picture are closed
MIN_BOX = 0.04  # share of the page a box must cover ...
MAX_BOX = 0.81  # ... and at most (beyond, the page is the picture: the global hashes' case)
MAX_BOXES = 2  # largest parts looked up per query (and the box holding all parts)
MIN_PART = 0.01  # share of the page below which a part is a glyph, not a picture's piece
MIN_FURNITURE = 0.05  # share of the page that must be content outside the box
SURROUND_PX = 2  # the band around a box that must be mostly page ...
MAX_SURROUND = 0.3  # ... at most this share of it content (a caption line under it)
SPARSE_EDGE = 0.35  # an edge row or column with less content than this is trimmed off
MARGIN_TOL = 10.0  # grey levels within which a work's margin is uniform ...
MARGIN_SHARE = 0.98  # ... on this share of a margin row or column ...
MARGIN_MIN = 0.04  # ... and the margin is at least this share of the side


def ring(shape: tuple[int, ...], px: int) -> np.ndarray:
    """Boolean mask of the outer ``px`` rows and columns."""
    m = np.zeros(shape[:2], bool)
    m[:px], m[-px:], m[:, :px], m[:, -px:] = True, True, True, True
    return m


def page_boxes(t: Thumb) -> list[tuple[float, float, float, float]]:
    """Normalised (x, y, w, h) boxes of the largest pictures on the page, largest first."""
    g = t.grey.astype(np.float32)
    h, w = g.shape
    if min(h, w) < 16:
        return []
    # The commonest grey level of the ring (bins of 8), and its median. Grey only: the coarse
    # chroma plane, upsampled, bleeds a few pixels past a picture's edge.
    rg = g[ring(g.shape, RING_PX)]
    bins = np.floor(rg / 8.0).astype(np.int32)
    page = float(np.median(rg[bins == np.bincount(bins).argmax()]))
    content = np.abs(g - page) > PAGE_TOL
    everything = content.copy()
    bar_rows, bar_cols = content.mean(axis=1) >= BAR_SHARE, content.mean(axis=0) >= BAR_SHARE
    # Page furniture sits at the page's edge: a header or footer bar, a sidebar. No bar at
    # all: not a page (a drawing's own parts would make "boxes", and the dense check, shown
    # the stem of a letter, finds a page icon's outline in it). Bars on all four edges: a
    # framed picture (a hazard sign's border), not a page either.
    edges = [
        bar_rows[:RING_PX].any(),
        bar_rows[-RING_PX:].any(),
        bar_cols[:RING_PX].any(),
        bar_cols[-RING_PX:].any(),
    ]
    if not any(edges) or all(edges):
        return []
    content[bar_rows] = False
    content[:, bar_cols] = False
    m = content.astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((STROKE_PX, STROKE_PX), np.uint8))
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((JOIN_PX, JOIN_PX), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    parts = []
    for i in range(1, n):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        if bw * bh >= MIN_PART * w * h:
            parts.append((x, y, x + bw, y + bh))
    parts.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
    candidates = [_tight(m, b) for b in parts[:MAX_BOXES]]
    if len(parts) > 1:  # a picture whose middle is the page colour falls apart (Hungary)
        union = (
            min(b[0] for b in parts),
            min(b[1] for b in parts),
            max(b[2] for b in parts),
            max(b[3] for b in parts),
        )
        candidates.append(_tight(m, union))
    boxes = []
    for x0, y0, x1, y1 in candidates:
        # A part that runs into two edges of the page is a flag's canton or a corner of a
        # drawing: a picture on a page lies inside it (it may touch one edge, cut off by the
        # screenshot, and is then still judged whole by the dense check).
        if (x0 <= 0) + (y0 <= 0) + (x1 >= w) + (y1 >= h) >= 2:
            continue
        # A page has furniture beside the picture (bars, a sidebar, text); a drawing on a
        # plain background has none, and its box is the global tier's trim, already tried.
        outside = everything.copy()
        outside[y0:y1, x0:x1] = False
        if outside.mean() < MIN_FURNITURE:
            continue
        # A picture on a page is set off by the page colour all round; a part of a drawing
        # touches the rest of it.
        a0, b0 = max(0, x0 - SURROUND_PX), max(0, y0 - SURROUND_PX)
        a1, b1 = min(w, x1 + SURROUND_PX), min(h, y1 + SURROUND_PX)
        around = content[b0:b1, a0:a1].copy()
        around[y0 - b0 : y1 - b0, x0 - a0 : x1 - a0] = False
        n_around = (b1 - b0) * (a1 - a0) - (y1 - y0) * (x1 - x0)
        if n_around > 0 and around.sum() / n_around > MAX_SURROUND:
            continue
        # The outermost pixels blend the picture's edge with the page: one in on each side.
        x0, y0, x1, y1 = x0 + 1, y0 + 1, x1 - 1, y1 - 1
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        share = (x1 - x0) * (y1 - y0) / (w * h)
        box = (x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h)
        if MIN_BOX <= share <= MAX_BOX and box not in boxes:
            boxes.append(box)
    return boxes


def _tight(m: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``box`` without edge rows and columns that are mostly page (a caption under the
    picture, joined to it across a narrow gap)."""
    x0, y0, x1, y1 = box
    while y1 - y0 > 4 and m[y1 - 1, x0:x1].mean() < SPARSE_EDGE:
        y1 -= 1
    while y1 - y0 > 4 and m[y0, x0:x1].mean() < SPARSE_EDGE:
        y0 += 1
    while x1 - x0 > 4 and m[y0:y1, x1 - 1].mean() < SPARSE_EDGE:
        x1 -= 1
    while x1 - x0 > 4 and m[y0:y1, x0].mean() < SPARSE_EDGE:
        x0 += 1
    return x0, y0, x1, y1


def margin_box(grey: np.ndarray) -> tuple[float, float, float, float] | None:
    """Normalised (x, y, w, h) box inside a uniform margin of the corner colour, or None."""
    g = grey.astype(np.float32)
    h, w = g.shape
    best = None
    for corner in (g[0, 0], g[0, -1], g[-1, 0], g[-1, -1]):
        same = np.abs(g - corner) <= MARGIN_TOL
        rows, cols = same.mean(axis=1) >= MARGIN_SHARE, same.mean(axis=0) >= MARGIN_SHARE
        if rows.all() or cols.all():
            continue
        top, bottom = int(np.argmin(rows)), int(np.argmin(rows[::-1]))
        left, right = int(np.argmin(cols)), int(np.argmin(cols[::-1]))
        if max(top, bottom) < MARGIN_MIN * h and max(left, right) < MARGIN_MIN * w:
            continue
        box = (left / w, top / h, (w - left - right) / w, (h - top - bottom) / h)
        if box[2] * box[3] > 0 and (best is None or box[2] * box[3] < best[2] * best[3]):
            best = box
    return best
