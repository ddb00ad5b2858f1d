"""Where a picture lies inside a page: the boxes the index looks up as whole pictures.

A screenshot, a web page or a post shows the work as one rectangle among page furniture: a
header bar, a sidebar, lines of text, the page colour around it. ORB finds such a work by
its corners, but a flag or an icon has few, and the text of the page has many. Found as a
box, the work is compared whole (its code looked up among the works' whole-picture codes,
then the dense check aligned box to work).

``page_boxes`` works on the query's thumbnail (128 px grey, coarse chroma):
  * the page's grey level is the commonest of the outer ring;
  * pixels away from it are content, except rows or columns that are content almost all the
    way across (bars, a sidebar) and strokes thinner than ``stroke_px`` (text);
  * what is left is closed over small gaps (one drawing's parts), and the bounding boxes of
    the largest connected parts are the candidates.

``margin_box`` is the work side: the box inside a uniform margin (clip art on a white page),
so that a work shown on a page of its own background colour, whose box is then its drawing
only, is still compared as it was drawn.
"""

from __future__ import annotations

import cv2
import numpy as np

from contentmatch_match.image.config import DEFAULT, PageBoxParams
from contentmatch_match.image.thumbs import Thumb


def ring(shape: tuple[int, ...], px: int) -> np.ndarray:
    """Boolean mask of the outer ``px`` rows and columns."""
    m = np.zeros(shape[:2], bool)
    m[:px], m[-px:], m[:, :px], m[:, -px:] = True, True, True, True
    return m


def page_boxes(
    t: Thumb, bp: PageBoxParams = DEFAULT.boxes
) -> list[tuple[float, float, float, float]]:
    """Normalised (x, y, w, h) boxes of the largest pictures on the page, largest first."""
    g = t.grey.astype(np.float32)
    h, w = g.shape
    if min(h, w) < 16:
        return []
    # The commonest grey level of the ring (bins of 8), and its median. Grey only: the coarse
    # chroma plane, upsampled, bleeds a few pixels past a picture's edge.
    rg = g[ring(g.shape, bp.ring_px)]
    bins = np.floor(rg / 8.0).astype(np.int32)
    page = float(np.median(rg[bins == np.bincount(bins).argmax()]))
    content = np.abs(g - page) > bp.page_tol
    everything = content.copy()
    bar_rows, bar_cols = content.mean(axis=1) >= bp.bar_share, content.mean(axis=0) >= bp.bar_share
    # Page furniture sits at the page's edge: a header or footer bar, a sidebar. No bar at
    # all: not a page (a drawing's own parts would make "boxes", and the dense check, shown
    # the stem of a letter, finds a page icon's outline in it). Bars on all four edges: a
    # framed picture (a hazard sign's border), not a page either.
    edges = [
        bar_rows[: bp.ring_px].any(),
        bar_rows[-bp.ring_px :].any(),
        bar_cols[: bp.ring_px].any(),
        bar_cols[-bp.ring_px :].any(),
    ]
    if not any(edges) or all(edges):
        return []
    content[bar_rows] = False
    content[:, bar_cols] = False
    m = content.astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((bp.stroke_px, bp.stroke_px), np.uint8))
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((bp.join_px, bp.join_px), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    parts = []
    for i in range(1, n):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        if bw * bh >= bp.min_part * w * h:
            parts.append((x, y, x + bw, y + bh))
    parts.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
    candidates = [_tight(m, b, bp.sparse_edge) for b in parts[: bp.max_boxes]]
    if len(parts) > 1:  # a picture whose middle is the page colour falls apart (Hungary)
        union = (
            min(b[0] for b in parts),
            min(b[1] for b in parts),
            max(b[2] for b in parts),
            max(b[3] for b in parts),
        )
        candidates.append(_tight(m, union, bp.sparse_edge))
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
        if outside.mean() < bp.min_furniture:
            continue
        # A picture on a page is set off by the page colour all round; a part of a drawing
        # touches the rest of it.
        a0, b0 = max(0, x0 - bp.surround_px), max(0, y0 - bp.surround_px)
        a1, b1 = min(w, x1 + bp.surround_px), min(h, y1 + bp.surround_px)
        around = content[b0:b1, a0:a1].copy()
        around[y0 - b0 : y1 - b0, x0 - a0 : x1 - a0] = False
        n_around = (b1 - b0) * (a1 - a0) - (y1 - y0) * (x1 - x0)
        if n_around > 0 and around.sum() / n_around > bp.max_surround:
            continue
        # The outermost pixels blend the picture's edge with the page: one in on each side.
        x0, y0, x1, y1 = x0 + 1, y0 + 1, x1 - 1, y1 - 1
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        share = (x1 - x0) * (y1 - y0) / (w * h)
        box = (x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h)
        if bp.min_box <= share <= bp.max_box and box not in boxes:
            boxes.append(box)
    return boxes


def _tight(
    m: np.ndarray, box: tuple[int, int, int, int], sparse: float
) -> tuple[int, int, int, int]:
    """``box`` without edge rows and columns that are mostly page (a caption under the
    picture, joined to it across a narrow gap)."""
    x0, y0, x1, y1 = box
    while y1 - y0 > 4 and m[y1 - 1, x0:x1].mean() < sparse:
        y1 -= 1
    while y1 - y0 > 4 and m[y0, x0:x1].mean() < sparse:
        y0 += 1
    while x1 - x0 > 4 and m[y0:y1, x1 - 1].mean() < sparse:
        x1 -= 1
    while x1 - x0 > 4 and m[y0:y1, x0].mean() < sparse:
        x0 += 1
    return x0, y0, x1, y1


def margin_box(
    grey: np.ndarray, bp: PageBoxParams = DEFAULT.boxes
) -> tuple[float, float, float, float] | None:
    """Normalised (x, y, w, h) box inside a uniform margin of the corner colour, or None."""
    g = grey.astype(np.float32)
    h, w = g.shape
    best = None
    for corner in (g[0, 0], g[0, -1], g[-1, 0], g[-1, -1]):
        same = np.abs(g - corner) <= bp.margin_tol
        rows, cols = same.mean(axis=1) >= bp.margin_share, same.mean(axis=0) >= bp.margin_share
        if rows.all() or cols.all():
            continue
        top, bottom = int(np.argmin(rows)), int(np.argmin(rows[::-1]))
        left, right = int(np.argmin(cols)), int(np.argmin(cols[::-1]))
        if max(top, bottom) < bp.margin_min * h and max(left, right) < bp.margin_min * w:
            continue
        box = (left / w, top / h, (w - left - right) / w, (h - top - bottom) / h)
        if box[2] * box[3] > 0 and (best is None or box[2] * box[3] < best[2] * best[3]):
            best = box
    return best
