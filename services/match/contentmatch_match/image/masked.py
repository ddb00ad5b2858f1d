"""Masked, colour-invariant judgment of an aligned candidate (everyday edits).

The dense and fine checks (``dense``, ``fine``) ask the aligned query to
reproduce the work nearly everywhere, in grey levels and colours, with at most one edge band
set aside. That is what tells clip-art siblings apart, and it is also what refuses the edits
people make every day: two caption bands, a logo and watermark text over the picture, a
"filter" (a colour grade and a vignette). This judge explains those families instead of
tolerating them one by one:

* **Structure per block, not per picture.** The overlap is cut into blocks (8 along its
  longer side). In each block the work's high-passed grey (broad ramps removed) is compared
  with the query's by zero-mean normalised correlation. A block is informative when the work
  varies there; it agrees when the correlation is high. The correlation ignores a gain and
  an offset per block, so a smooth gain field (a vignette) and any monotone tone curve (a
  grade's contrast curve) do not count against a copy.
* **Occluded blocks must be explained by an overlay, the rest must agree.** A copy with an
  overlay is the work with some blocks replaced by foreign content: either translucent (a
  watermark, a logo at partial opacity: the work still shows through, at reduced contrast)
  or opaque bands along the top or bottom (meme captions: most of the row differs). A
  sibling differs inside the drawing's own structure: a block in the middle that neither
  shows the work through nor belongs to a band. At most ``max_unexplained`` of the
  informative blocks may be such blocks, and the agreeing blocks must hold
  ``min_agree_share`` of the informative ones.
* **Colour by a global grade model.** A grade moves every colour by one smooth rule: a cast
  (an offset of Cb/Cr), a saturation gain, a small hue turn, and split toning (a cast that
  depends on the grey level). That model is fitted on the agreeing blocks; the share of
  coloured pixels it does not explain must stay small, and the fitted hue turn must be one a
  grade makes. Another flag of the same layout needs a turn of ~100 degrees (blue for green)
  or leaves whole stripes unexplained.

The judge sees the alignment as a 3 x 3 homography (query thumbnail px -> work thumbnail px),
so perspective copies are judged in the work's frame as they are. Acceptance limits:
``config.MaskedRules``; how it measures (block size, correlations, bands, the grade model):
``config.MaskedMeasure``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from contentmatch_match.image.config import DEFAULT, MaskedLimits, MaskedMeasure


class Thumb(Protocol):
    """A thumbnail as the index keeps it: grey (the dense check's size), chroma (Cb/Cr,
    coarser, 128 = neutral) and, for works, the finer grey it was fingerprinted at."""

    @property
    def grey(self) -> np.ndarray: ...

    @property
    def chroma(self) -> np.ndarray | None: ...

    @property
    def fine(self) -> np.ndarray | None: ...


def local_zncc(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local zero-mean normalised correlation of ``a`` and ``b`` (Gaussian window, means
    normalised by the mask) and the local std maps of each."""
    m = mask.astype(np.float32)
    norm = np.maximum(cv2.GaussianBlur(m, (0, 0), sigma), 1e-3)

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x * m, (0, 0), sigma) / norm

    ma, mb = mean(a), mean(b)
    va = np.maximum(mean(a * a) - ma * ma, 0)
    vb = np.maximum(mean(b * b) - mb * mb, 0)
    sa, sb = np.sqrt(va), np.sqrt(vb)
    return (mean(a * b) - ma * mb) / (sa * sb + 1.0), sa, sb


@dataclass(frozen=True)
class MaskedCheck:
    informative: int  # informative work blocks in the overlap
    agree: float  # agreeing / informative blocks not under a band
    agree_zncc: float  # mean correlation of the agreeing blocks
    translucent: float  # differing blocks where the work shows through / informative
    banded: float  # differing blocks inside a top or bottom band / informative
    unexplained: float  # differing blocks no overlay explains / informative
    added: float  # blocks textured in the query only (outside bands) / informative
    colour_off: float  # coloured pixels off the fitted grade (NaN: no colour to compare)
    hue_turn: float  # degrees (NaN: no colour)
    saturation: float  # fitted saturation gain (NaN: no colour)
    overlap: float  # share of the work covered by the aligned query
    # The query in the work's frame with the edit undone: gain field and grade removed, the
    # blocks set aside as overlay filled from the work (None: nothing to judge): grey and
    # Cb/Cr planes. The dense and fine checks judge it, so that what is left must agree as a
    # plain copy does.
    restored: tuple[np.ndarray, np.ndarray | None] | None = field(
        default=None, compare=False, repr=False
    )
    # Where ``restored`` lies in the work's dense thumbnail: 2 x 3, its px -> work px
    restored_align: np.ndarray | None = field(default=None, compare=False, repr=False)
    # share of the aligned query that lies on the work (a zoom: all of it; a photo of a
    # screen holds the work, which is covered instead)
    query_inside: float = 1.0

    def accepted(self, limits: MaskedLimits = DEFAULT.masked.limits) -> bool:
        colour_ok = math.isnan(self.colour_off) or (
            self.colour_off <= limits.max_colour_off
            and abs(self.hue_turn) <= limits.grade_max_turn
            and limits.grade_gain[0] <= self.saturation <= limits.grade_gain[1]
        )
        return (
            self.informative >= limits.min_blocks
            and self.overlap >= limits.min_overlap
            and max(self.overlap, self.query_inside) >= limits.min_contained
            and self.agree >= limits.min_agree_share
            and self.agree_zncc >= limits.min_agree_zncc
            and self.unexplained <= limits.max_unexplained
            and self.added <= limits.max_added
            and self.translucent + self.banded <= limits.max_occluded
            and colour_ok
        )

    def as_evidence(self) -> dict[str, object]:
        def r(v: float) -> float | None:
            return None if math.isnan(v) else round(float(v), 4)

        return {
            "masked_blocks": self.informative,
            "masked_agree": r(self.agree),
            "masked_translucent": r(self.translucent),
            "masked_banded": r(self.banded),
            "masked_unexplained": r(self.unexplained),
            "masked_added": r(self.added),
            "masked_agree_zncc": r(self.agree_zncc),
            "masked_overlap": r(self.overlap),
            "masked_query_inside": r(self.query_inside),
            "grade_colour_off": r(self.colour_off),
            "grade_hue_turn": r(self.hue_turn),
        }


NO_EVIDENCE = MaskedCheck(0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, math.nan, math.nan, math.nan, 0.0)


def work_grey(work: Thumb) -> np.ndarray:
    """The finest grey the index keeps of a work (the fine thumbnail when there is one)."""
    return work.fine if work.fine is not None else work.grey


def to_fine(work: Thumb, H: np.ndarray) -> np.ndarray:
    """A homography onto the work's dense thumbnail, carried onto its finest grey."""
    g, f = work.grey, work_grey(work)
    s = np.diag([f.shape[1] / g.shape[1], f.shape[0] / g.shape[0], 1.0])
    return s @ H


def _frame_area(H: np.ndarray, shape: tuple[int, ...]) -> float:
    """Area (px of the work's frame) of the query frame mapped by H, less a px all round
    (the warped mask is eroded by one)."""
    h, w = shape[:2]
    pts = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64) @ H.T
    if np.any(pts[:, 2] <= 1e-9):
        return math.inf
    xy = pts[:, :2] / pts[:, 2:3]
    area = 0.5 * abs(
        float(np.dot(xy[:, 0], np.roll(xy[:, 1], -1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], -1)))
    )
    perimeter = float(np.hypot(*(np.roll(xy, -1, axis=0) - xy).T).sum())
    return max(area - perimeter, 1.0)


def _local_scale(H: np.ndarray, x: float, y: float) -> float:
    """Area scale of H at (x, y): how large one query px is in the work's frame."""
    p = H @ np.array([x, y, 1.0])
    w = p[2]
    J = (H[:2, :2] * w - np.outer(p[:2], H[2, :2])) / (w * w)
    return float(math.sqrt(abs(np.linalg.det(J))))


def warp_query(
    query: np.ndarray, H: np.ndarray, ww: int, wh: int, mm: MaskedMeasure = DEFAULT.masked_measure
) -> tuple[np.ndarray, np.ndarray]:
    """The query warped into the work's frame, and the mask of what it covers. A query shown
    smaller than it is (a canvas, a perspective photo with background) is shrunk first."""
    qh, qw = query.shape[:2]
    s = _local_scale(H, qw / 2, qh / 2)
    q = query.astype(np.float32)
    if s < mm.shrink_below:
        nw, nh = max(8, round(qw * s)), max(8, round(qh * s))
        q = cv2.resize(q, (nw, nh), interpolation=cv2.INTER_AREA)
        H = H @ np.diag([qw / nw, qh / nh, 1.0])
    warped = cv2.warpPerspective(q, H, (ww, wh), flags=cv2.INTER_LINEAR)
    ones = np.ones(q.shape[:2], np.float32)
    mask = cv2.warpPerspective(ones, H, (ww, wh), flags=cv2.INTER_LINEAR) > 0.99
    mask = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return warped, mask


def _highpass(a: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """``a`` minus its masked Gaussian mean: broad ramps and gain fields removed."""
    m = mask.astype(np.float32)
    num = cv2.GaussianBlur(a * m, (0, 0), sigma)
    den = np.maximum(cv2.GaussianBlur(m, (0, 0), sigma), 1e-3)
    return (a - num / den) * m


@dataclass(frozen=True)
class _Blocks:
    zncc: np.ndarray  # per block correlation (NaN: not informative)
    gain: np.ndarray  # per block regression slope query ~ work
    # per block: share of the work's textured pixels whose own small neighbourhood agrees,
    # and the query's local contrast there relative to the work's (median)
    px_agree: np.ndarray
    contrast: np.ndarray
    query_std: np.ndarray  # per block high-passed grey std of the query
    informative: np.ndarray  # bool
    rows: np.ndarray  # block row index of each block
    row_count: int
    edge_rows: int  # block rows from the top (or bottom) centred within band_rows
    slices: list[tuple[slice, slice]]
    # per px row of the overlap (y0 to y1): share of the work's textured px that agree (NaN:
    # too few textured px to say)
    row_agree: np.ndarray
    span: tuple[int, int]  # the overlap's rows y0, y1
    hw: np.ndarray  # the high-passed work and query, and the overlap's mask
    hq: np.ndarray
    mask: np.ndarray


def _trimmed_zncc(a: np.ndarray, b: np.ndarray, mm: MaskedMeasure) -> tuple[float, float, float]:
    """(correlation, slope b ~ a, std of b) of one block, with the ``trim`` share of pixels
    that fit a gain/offset worst left out: an overlay's edge reaching into a block that the
    work otherwise fills does not make it differ."""
    sa, sb = float(a.std()), float(b.std())
    if sa < 1e-6 or sb < 1e-6:
        return 0.0, 0.0, sb
    ac, bc = a - a.mean(), b - b.mean()
    g = float((ac * bc).mean()) / (sa * sa)
    res = np.abs(bc - g * ac)
    keep = res <= np.quantile(res, 1 - mm.trim)
    a2, b2 = a[keep], b[keep]
    s2a, s2b = float(a2.std()), float(b2.std())
    cov = float(((a2 - a2.mean()) * (b2 - b2.mean())).mean())
    return cov / (s2a * s2b + 1e-6), cov / (s2a * s2a + 1e-6), sb


def _worst_quarter(hw: np.ndarray, hq: np.ndarray, m: np.ndarray, mm: MaskedMeasure) -> float:
    """The lowest correlation of a block's informative quarters, where it is below
    ``detail_zncc`` (a small symbol that differs inside a block whose larger structure, a
    disc's edge, agrees); 1.0 otherwise."""
    h, w = m.shape
    worst = 1.0
    for ys in (slice(0, h // 2), slice(h // 2, h)):
        for xs in (slice(0, w // 2), slice(w // 2, w)):
            mq = m[ys, xs]
            if mq.size == 0 or mq.mean() < mm.min_valid:
                continue
            a, b = hw[ys, xs][mq], hq[ys, xs][mq]
            if a.std() < mm.texture_std:
                continue
            z = _trimmed_zncc(a, b, mm)[0]
            if z < mm.detail_zncc:
                worst = min(worst, z)
    return worst


def _blocks(w: np.ndarray, q: np.ndarray, mask: np.ndarray, mm: MaskedMeasure) -> _Blocks | None:
    ys, xs = np.nonzero(mask)
    if len(ys) < mm.min_pixels:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(mm.min_block_px, round(max(y1 - y0, x1 - x0) / mm.blocks))
    hw = _highpass(w, mask, mm.highpass * side * 2)
    hq = _highpass(q, mask, mm.highpass * side * 2)
    ny, nx = max(1, round((y1 - y0) / side)), max(1, round((x1 - x0) / side))
    ey = np.linspace(y0, y1, ny + 1).round().astype(int)
    ex = np.linspace(x0, x1, nx + 1).round().astype(int)
    zmap, sw, sq = local_zncc(hw, hq, mask, mm.px_sigma)
    textured = mask & (sw >= mm.px_texture)
    zn, gain, qstd, inf, rows, slices = [], [], [], [], [], []
    px_agree, contrast = [], []
    for r in range(ny):
        for c in range(nx):
            sl = (slice(ey[r], ey[r + 1]), slice(ex[c], ex[c + 1]))
            m = mask[sl]
            rows.append(r)
            slices.append(sl)
            t = textured[sl]
            agreeing = t & (zmap[sl] >= mm.px_agree)
            px_agree.append(
                float(agreeing.sum() / t.sum()) if t.sum() >= mm.px_min_textured else math.nan
            )
            ratio = sq[sl][agreeing] / np.maximum(sw[sl][agreeing], 1e-3)
            contrast.append(
                float(np.median(ratio)) if len(ratio) >= mm.px_min_textured // 2 else math.nan
            )
            if m.size == 0 or m.mean() < mm.min_valid:
                zn.append(math.nan)
                gain.append(math.nan)
                qstd.append(0.0)
                inf.append(False)
                continue
            a, b = hw[sl][m], hq[sl][m]
            sa = float(a.std())
            z, g, sb = _trimmed_zncc(a, b, mm)
            inf.append(sa >= mm.texture_std)
            zn.append(
                min(z, _worst_quarter(hw[sl], hq[sl], m, mm)) if sa >= mm.texture_std else math.nan
            )
            gain.append(g)
            qstd.append(sb)
    band_px = mm.band_rows * (y1 - y0)
    edge_rows = int(np.sum((ey[:-1] + ey[1:]) / 2 - y0 < band_px))
    t_rows = textured[y0:y1].sum(axis=1)
    a_rows = (textured & (zmap >= mm.px_agree))[y0:y1].sum(axis=1)
    # Where the work is plain, a row the query has texture across (a caption's letters) is
    # one where the work does not show either.
    q_rows = (mask & (sq >= mm.px_texture))[y0:y1].sum(axis=1)
    lettered = q_rows >= mm.band_query_texture * np.maximum(mask[y0:y1].sum(axis=1), 1)
    row_agree = np.where(
        t_rows >= mm.px_min_textured,
        a_rows / np.maximum(t_rows, 1),
        np.where(lettered, 0.0, math.nan),
    )
    return _Blocks(
        np.array(zn),
        np.array(gain),
        np.array(px_agree),
        np.array(contrast),
        np.array(qstd),
        np.array(inf),
        np.array(rows),
        ny,
        edge_rows,
        slices,
        row_agree,
        (int(y0), int(y1)),
        hw,
        hq,
        mask,
    )


def _band_rows(b: _Blocks, differs: np.ndarray, mm: MaskedMeasure) -> np.ndarray:
    """Bool per block: it lies in a top or bottom band, a run of block rows from the edge
    (within ``band_rows`` of the height) in which most informative blocks differ."""
    limit = max(1, b.edge_rows)
    bad = np.zeros(b.row_count, bool)
    for r in range(b.row_count):
        sel = b.informative & (b.rows == r)
        # A row without informative work blocks (a margin the band covers) neither starts
        # nor breaks a band.
        bad[r] = not sel.any() or differs[sel].mean() >= mm.band_min_bad
    band = np.zeros(b.row_count, bool)
    for order in (range(b.row_count), range(b.row_count - 1, -1, -1)):
        run = []
        for r in list(order)[:limit]:
            if not bad[r]:
                break
            run.append(r)
        # The run counts as a band only if it holds a row where blocks really differ.
        if any((b.informative & differs & (b.rows == r)).any() for r in run):
            band[run] = True
    return band[b.rows]


def _band_extent(b: _Blocks, mm: MaskedMeasure) -> tuple[int, int]:
    """Px rows from the overlap's top and from its bottom that a caption band covers: a
    run of rows from the edge (within ``band_rows`` of the height) on which the work's
    texture does not show (rows without texture neither start nor break it), at least
    ``band_min_px`` of the height; 0 when there is none. A band's edge rarely falls on a
    block's edge: the blocks it crosses are judged on their part outside it."""
    y0, y1 = b.span
    h = y1 - y0
    limit = int(mm.band_rows * h)

    def extent(rows: np.ndarray) -> int:
        last = 0
        for k, a in enumerate(rows[:limit]):
            if math.isnan(a):
                continue
            if a >= mm.band_px_agree:
                break
            last = k + 1
        return last if last >= mm.band_min_px * h else 0

    return extent(b.row_agree), extent(b.row_agree[::-1])


def _outside_band(b: _Blocks, i: int, top: int, bottom: int, mm: MaskedMeasure) -> float | None:
    """The correlation of block ``i`` on its rows outside the bands (``top`` and ``bottom``
    px rows of the overlap); None when the block does not reach into a band, -1.0 when
    too little of it is left to say (it lies in the band)."""
    ys, xs = b.slices[i]
    y0, y1 = b.span
    lo, hi = max(ys.start, y0 + top), min(ys.stop, y1 - bottom)
    if lo == ys.start and hi == ys.stop:
        return None
    if hi - lo < mm.band_min_left * (ys.stop - ys.start):
        return -1.0
    sl = (slice(lo, hi), xs)
    m = b.mask[sl]
    a, q = b.hw[sl][m], b.hq[sl][m]
    if len(a) < mm.px_min_textured or a.std() < mm.texture_std:
        return -1.0
    return _trimmed_zncc(a, q, mm)[0]


@dataclass(frozen=True)
class GradeFit:
    colour_off: float
    hue_turn: float
    saturation: float
    # a, b, cast x/y, tone x/y of ``q = [[a, -b], [b, a]] w + cast + tone * (Y - 128) / 128``
    params: np.ndarray | None = field(default=None, compare=False, repr=False)

    def undo(self, qc: np.ndarray, wy: np.ndarray) -> np.ndarray:
        """Query Cb/Cr (- 128, h x w x 2) brought back to the work's colours."""
        if self.params is None:
            return qc
        a, b, cx, cy, tx, ty = self.params
        y = (wy - 128.0) / 128.0
        rx, ry = qc[..., 0] - cx - tx * y, qc[..., 1] - cy - ty * y
        det = max(a * a + b * b, 1e-6)
        return np.dstack([(a * rx + b * ry) / det, (-b * rx + a * ry) / det]).astype(np.float32)


NO_COLOUR = GradeFit(math.nan, math.nan, math.nan)


def fit_grade(
    wc: np.ndarray,
    qc: np.ndarray,
    wy: np.ndarray,
    keep: np.ndarray,
    mm: MaskedMeasure = DEFAULT.masked_measure,
) -> GradeFit:
    """Fit ``q = s R(turn) w + cast + tone * (Y - 128)`` on the kept pixels (Cb/Cr - 128,
    h x w x 2 each; Y the work's grey at that size) and return the share of coloured pixels
    it leaves more than ``colour_off`` away, with the fitted turn and saturation gain."""
    w = wc[keep].astype(np.float64)
    q = qc[keep].astype(np.float64)
    y = (wy[keep].astype(np.float64) - 128.0) / 128.0
    coloured = (np.hypot(w[:, 0], w[:, 1]) > mm.coloured) | (
        np.hypot(q[:, 0], q[:, 1]) > mm.coloured
    )
    if coloured.sum() < mm.min_coloured_px:
        return NO_COLOUR
    w, q, y = w[coloured], q[coloured], y[coloured]
    n = len(w)
    # Unknowns: a, b (s R = [[a, -b], [b, a]]), cast x/y, tone x/y.
    rows_x = np.column_stack([w[:, 0], -w[:, 1], np.ones(n), np.zeros(n), y, np.zeros(n)])
    rows_y = np.column_stack([w[:, 1], w[:, 0], np.zeros(n), np.ones(n), np.zeros(n), y])
    A = np.vstack([rows_x, rows_y])
    t = np.concatenate([q[:, 0], q[:, 1]])
    lam = (
        math.sqrt(mm.ridge * n) * mm.ridge_levels
    )  # in Cb/Cr levels: a grey work leaves a, b to the pull
    prior = np.zeros((2, 6))
    prior[0, 0] = prior[1, 1] = lam
    A_all = np.vstack([A, prior])
    t_all = np.concatenate([t, [lam, 0.0]])
    weight = np.ones(len(t_all))
    for _ in range(2):  # refit once without the worst quarter (the overlay's own colours)
        sol, *_ = np.linalg.lstsq(A_all * weight[:, None], t_all * weight, rcond=None)
        res = (A @ sol - t).reshape(2, n)
        err = np.hypot(res[0], res[1])
        cut = np.quantile(err, mm.grade_refit_keep)
        weight[: 2 * n] = np.tile((err <= cut).astype(float), 2)
    a, b = sol[0], sol[1]
    return GradeFit(
        float((err > mm.colour_off).mean()),
        float(math.degrees(math.atan2(b, a))),
        float(math.hypot(a, b)),
        sol,
    )


def masked_check(
    work: Thumb, query: Thumb, H: np.ndarray, mm: MaskedMeasure = DEFAULT.masked_measure
) -> MaskedCheck:
    """Judge the query aligned by ``H`` (3 x 3, query thumbnail px -> work dense-thumbnail
    px) block by block, with overlays set aside where they explain the differences."""
    wg = work_grey(work).astype(np.float32)
    wh, ww = wg.shape
    Hf = to_fine(work, H)
    warped, mask = warp_query(query.grey, Hf, ww, wh, mm)
    overlap = float(mask.mean())
    query_inside = min(1.0, float(mask.sum()) / _frame_area(Hf, query.grey.shape))
    b = _blocks(wg, warped, mask, mm)
    if b is None or not b.informative.any():
        return NO_EVIDENCE
    inf = b.informative
    n = int(inf.sum())
    z = np.where(inf, b.zncc, -1.0)
    agree = inf & (z >= mm.agree_zncc)
    differs = inf & ~agree
    # The copy's own contrast, from the agreeing blocks: a translucent overlay leaves a share.
    copy_gain = float(np.median(b.gain[agree])) if agree.any() else 1.0
    rel = b.gain / max(copy_gain, 1e-3)
    # ... measured on the block as a whole, or pixel by pixel where the work's own detail
    # still agrees (a logo's strong edges dominate a block's correlation, not its pixels).
    known = b.contrast[agree][np.isfinite(b.contrast[agree])]
    copy_contrast = float(np.median(known)) if len(known) else 1.0
    rel_px = np.nan_to_num(b.contrast / max(copy_contrast, 1e-3), nan=0.0)
    through = differs & (
        (
            (z >= mm.show_through_zncc)
            & (rel >= mm.show_through_gain[0])
            & (rel <= mm.show_through_gain[1])
        )
        | (
            (np.nan_to_num(b.px_agree, nan=0.0) >= mm.show_through_px)
            & (rel_px >= mm.show_through_gain[0])
            & (rel_px <= mm.show_through_gain[1])
        )
    )
    in_band = _band_rows(b, differs, mm)
    # Blocks a band's edge crosses: explained when their part outside the band agrees
    top, bottom = _band_extent(b, mm)
    under_band = in_band.copy()
    if top or bottom:
        for i in range(len(b.slices)):
            z_out = _outside_band(b, i, top, bottom, mm)
            if z_out is None:
                continue
            under_band[i] = True
            if differs[i] and not through[i] and (z_out < 0 or z_out >= mm.agree_zncc):
                in_band[i] = True
    banded = differs & ~through & in_band
    unexplained = differs & ~through & ~banded
    # Texture where the work is plain: an overlay on a blank area, or a sibling's own symbol.
    added = ~inf & (b.query_std >= mm.added_std * max(copy_gain, mm.added_min_gain)) & ~under_band
    grade, qcw = NO_COLOUR, None
    if work.chroma is not None and query.chroma is not None and agree.any():
        grade, qcw = _grade_on(work, query, Hf, wg, b, agree, mm)
    restored, align = None, None
    if agree.any():
        fill = np.zeros(wg.shape, bool)
        # A band is set aside whole, also where the work is plain under it.
        for i in np.flatnonzero(through | (in_band & banded.any())):
            fill[b.slices[i]] = True
        # ... and the band's own rows, where its edge crosses blocks that still agree
        y0, y1 = b.span
        fill[y0 : y0 + top] = True
        fill[y1 - bottom : y1] = True
        fill &= mask
        restored, align = _restore(work, wg, warped, mask, b, agree, fill, grade, qcw, mm)
    return MaskedCheck(
        informative=n,
        # of the blocks a band does not cover: the rest of the picture must agree
        agree=float(agree.sum() / max(n - int(banded.sum()), 1)),
        agree_zncc=float(z[agree].mean()) if agree.any() else 0.0,
        translucent=float(through.sum() / n),
        banded=float(banded.sum() / n),
        unexplained=float(unexplained.sum() / n),
        added=float(added.sum() / n),
        colour_off=grade.colour_off,
        hue_turn=grade.hue_turn,
        saturation=grade.saturation,
        overlap=overlap,
        restored=restored,
        restored_align=align,
        query_inside=query_inside,
    )


def untone(
    w: np.ndarray, q: np.ndarray, keep: np.ndarray, mm: MaskedMeasure = DEFAULT.masked_measure
) -> np.ndarray:
    """``q`` with a grade's monotone tone curve (fitted from the work's grey levels to the
    query's on the kept pixels: medians per band of work levels) undone."""
    wv, qv = w[keep], q[keep]
    if len(wv) < mm.tone_bins * mm.tone_min_pixels:
        return q
    edges = np.linspace(0, 256, mm.tone_bins + 1)
    xs, ys = [], []
    for lo, hi in itertools.pairwise(edges):
        sel = (wv >= lo) & (wv < hi)
        if sel.sum() >= mm.tone_min_pixels:
            xs.append(float(np.median(wv[sel])))
            ys.append(float(np.median(qv[sel])))
    if len(xs) < 3:
        return q
    xa, ya = np.asarray(xs), np.asarray(ys)
    slopes = np.diff(ya) / np.maximum(np.diff(xa), 1e-3)
    if slopes.min() < mm.tone_slope[0] or slopes.max() > mm.tone_slope[1]:
        # A grade's curve is smooth and monotone: one band of levels jumping (a sibling's
        # symbol in another tone) or a flat stretch is no grade.
        return q
    ys = np.maximum.accumulate(ya)
    # Strictly increasing for the inverse: ties get a hair of slope.
    ys = ys + np.arange(len(ys)) * 1e-3
    return np.interp(q, ys, np.asarray(xs)).astype(np.float32)


def _field_terms(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(x), x, y, x * x, y * y, x * y])


def gain_field(
    w: np.ndarray,
    q: np.ndarray,
    keep: np.ndarray,
    mm: MaskedMeasure = DEFAULT.masked_measure,
    quadratic: bool = True,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Fit ``q = G(x, y) w + C(x, y)`` with G and C quadratic (else linear) over the
    picture (a vignette, a graduated filter, uneven light on a print) on the kept pixels;
    (G, C) maps or None."""
    k = 6 if quadratic else 3
    h, wd = w.shape
    ys, xs = np.nonzero(keep)
    if len(ys) < mm.min_field_px:
        return None
    if len(ys) > mm.gain_field_samples:
        pick = np.linspace(0, len(ys) - 1, mm.gain_field_samples).astype(int)
        ys, xs = ys[pick], xs[pick]
    x, y = xs / max(wd - 1, 1) * 2 - 1, ys / max(h - 1, 1) * 2 - 1
    t = _field_terms(x, y)[:, :k]
    wv, qv = w[ys, xs].astype(np.float64), q[ys, xs].astype(np.float64)
    A = np.hstack([t * wv[:, None], t])
    use = np.ones(len(qv), bool)
    for _ in range(2):  # refit once without the worst fifth (what no smooth field explains)
        sol, *_ = np.linalg.lstsq(A[use], qv[use], rcond=None)
        err = np.abs(A @ sol - qv)
        use = err <= np.quantile(err, mm.field_refit_keep)
    yy, xx = np.mgrid[0:h, 0:wd]
    full = _field_terms((xx / max(wd - 1, 1) * 2 - 1).ravel(), (yy / max(h - 1, 1) * 2 - 1).ravel())
    G = (full[:, :k] @ sol[:k]).reshape(h, wd)
    C = (full[:, :k] @ sol[k:]).reshape(h, wd)
    return G.astype(np.float32), C.astype(np.float32)


def _restore(
    work: Thumb,
    wg: np.ndarray,
    warped: np.ndarray,
    mask: np.ndarray,
    b: _Blocks,
    agree: np.ndarray,
    fill: np.ndarray,
    grade: GradeFit,
    qcw: np.ndarray | None,
    mm: MaskedMeasure,
) -> tuple[tuple[np.ndarray, np.ndarray | None] | None, np.ndarray | None]:
    keep = np.zeros(wg.shape, bool)
    for i in np.flatnonzero(agree):
        keep[b.slices[i]] = True
    keep &= mask
    fitted = gain_field(wg, warped, keep, mm)
    if fitted is not None and float(fitted[0][keep].min(initial=1.0)) <= mm.min_field_gain:
        # A quadratic fitted on a strip (what two bands leave) bends off it: a plane instead
        fitted = gain_field(wg, warped, keep, mm, quadratic=False)
    if fitted is None:
        return None, None
    G, C = fitted
    if float(G[keep].min(initial=1.0)) <= mm.min_field_gain:
        return None, None  # an inverted or flattened picture is no grade
    q = untone(wg, (warped - C) / G, keep, mm)
    # An overlay's edge reaches past the blocks set aside: grow them over what differs
    # plainly from the work next to them.
    far = np.abs(q - wg) > mm.overlay_grow_grey
    grown = fill.copy()
    for _ in range(mm.overlay_grow_px):
        grown |= cv2.dilate(grown.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & far
    q = np.where(grown | ~mask, wg, q)
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    grey = np.clip(q[y0:y1, x0:x1] + 0.5, 0, 255).astype(np.uint8)
    chroma = None
    if work.chroma is not None and qcw is not None:
        wc = work.chroma.astype(np.float32) - 128.0
        ch, cw = wc.shape[:2]
        wy = cv2.resize(wg, (cw, ch), interpolation=cv2.INTER_AREA)
        qc = grade.undo(qcw, wy)
        small = cv2.resize(
            (fill | ~mask).astype(np.float32), (cw, ch), interpolation=cv2.INTER_AREA
        )
        qc = np.where((small > 0.5)[..., None], wc, qc)
        fy, fx = ch / wg.shape[0], cw / wg.shape[1]
        cy0, cy1 = int(y0 * fy), max(int(y0 * fy) + 1, math.ceil(y1 * fy))
        cx0, cx1 = int(x0 * fx), max(int(x0 * fx) + 1, math.ceil(x1 * fx))
        chroma = np.clip(qc[cy0:cy1, cx0:cx1] + 128.5, 0, 255).astype(np.uint8)
    gh, gw = work.grey.shape
    sx, sy = gw / wg.shape[1], gh / wg.shape[0]
    align = np.array([[sx, 0.0, x0 * sx], [0.0, sy, y0 * sy]])
    return (grey, chroma), align


def _grade_on(
    work: Thumb,
    query: Thumb,
    Hf: np.ndarray,
    wg: np.ndarray,
    b: _Blocks,
    agree: np.ndarray,
    mm: MaskedMeasure,
) -> tuple[GradeFit, np.ndarray]:
    """The grade model fitted at the work's chroma resolution, on the agreeing blocks."""
    wc = work.chroma.astype(np.float32) - 128.0
    ch, cw = wc.shape[:2]
    fh, fw = wg.shape
    keep_fine = np.zeros(wg.shape, np.uint8)
    for i in np.flatnonzero(agree):
        keep_fine[b.slices[i]] = 1
    keep = cv2.resize(keep_fine, (cw, ch), interpolation=cv2.INTER_AREA) > 0
    # Query chroma -> query grey px -> work fine px -> work chroma px.
    qg, qc = query.grey, query.chroma.astype(np.float32) - 128.0
    to_q = np.diag([qg.shape[1] / qc.shape[1], qg.shape[0] / qc.shape[0], 1.0])
    to_c = np.diag([cw / fw, ch / fh, 1.0])
    Hc = to_c @ Hf @ to_q
    planes = [
        cv2.warpPerspective(np.ascontiguousarray(qc[:, :, i]), Hc, (cw, ch), flags=cv2.INTER_AREA)
        for i in range(2)
    ]
    covered = cv2.warpPerspective(np.ones(qc.shape[:2], np.float32), Hc, (cw, ch)) > 0.99
    wy = cv2.resize(wg, (cw, ch), interpolation=cv2.INTER_AREA)
    qcw = np.dstack(planes)
    return fit_grade(wc, qcw, wy, keep & covered, mm), qcw
