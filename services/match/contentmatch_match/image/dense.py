"""Dense verification: does the aligned query reproduce the registered work's pixels?

Global hashes and ORB inliers say that two images *share something*; on clip art that is not
enough. Flags share a Union Jack canton or a tricolour layout, road signs share their red
triangle, icon themes share a folder drawing, and ORB happily finds 50 consistent inliers on
the shared part. What tells a copy from a sibling is the rest of the picture: in a copy, every
part of the work that the query covers looks the same; in a sibling, the distinctive part (the
symbol inside the sign, the badge on the flag, the colours) does not.

So once a candidate is aligned (identity / mirror / trimmed border for global-hash candidates,
the RANSAC similarity for ORB candidates), the query's thumbnail is warped into the frame of the
work's thumbnail, the alignment is refined with ECC when that helps (a 4 degree rotation seen
through an identity alignment, RANSAC noise), and three things are measured on the overlap:

  * ``agree``: the share of textured pixels whose local zero-mean normalised correlation
    (Gaussian window) is high: structure, invariant to brightness, contrast, grey conversion;
  * ``diff``: the share of textured pixels where the grey levels differ beyond what a global
    brightness/contrast change and one pixel of misalignment explain (an envelope test: the
    query must lie within the min..max of the work's 3x3 neighbourhood, and vice versa). This
    catches the small symbol that differs inside an otherwise identical sign;
  * ``colour``: the cosine between the chroma fields (Cb/Cr), when both images have colour: a
    recoloured icon or another tricolour flag has the same structure in grey. One cosine for
    the whole picture lets a local recolour through (Ireland's green where France has blue
    is a third of the flag), so ``colour_moved`` is measured per pixel too: the share of
    coloured pixels whose Cb/Cr move beyond one global saturation gain (contrast changes
    scale saturation; nothing else moves colours in a copy), and ``colour_reversed``: how
    densely hues are turned round in one place (a blue cross where the work has a red one,
    too small a share of the flag to move the other two). And the mean chroma of each side
    (``work_chroma``, ``query_chroma``): a copy can lose its colours (grey conversion), not
    gain them.

Texture means variation beyond a local ramp: a steep gradient varies locally too, and two
gradients in the same direction would otherwise "agree". When both thumbnails are (nearly)
flat in that sense, a gradient wallpaper with faint shapes for instance, the check reports
``smooth`` instead: the correlation of the faint detail left once each side's broad ramps (the
gradient) are removed. Plain gradients are shared by countless pictures and have no such
detail: undecided.

An overlay along one edge (a caption banner, a letterbox, a bottom watermark) is allowed: the
worst band along one edge (<= ``dm.band`` of the side) may be discounted, and the figures are
reported with it discounted; siblings differ in their middle, which no band removes. What
must be left is half of the *work's* texture, and ``work_agree`` (agreement on the work's
textured pixels, no band discounted) is what the overlay may not drag down: a banner over a
blank margin brings texture of its own, often more than a small drawing has.
The judges decide on these figures (``judges``); every threshold is in ``config``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from contentmatch_match.image.align import (
    after_ecc,
    homogeneous,
    refine_ecc,
    shrink_query,
    transform_scale,
    warp,
)
from contentmatch_match.image.config import DEFAULT, DenseMeasure
from contentmatch_match.image.pixels import (
    GaussianWindow,
    RampFit,
    densest,
    edge_bands,
    envelope_residual,
    local_zncc,
    tone_mapped,
)
from contentmatch_match.image.thumbs import Thumb


@dataclass(frozen=True)
class DenseCheck:
    agree: float  # share of textured pixels that agree (0..1), no band discounted
    agree_band: float  # the same with the worst edge band discounted
    diff: float  # share of textured pixels that differ, with that band discounted
    colour: float  # chroma cosine (-1..1), NaN when either image is grey
    band: str  # which band was discounted ("" = none)
    overlap: float  # share of the work thumbnail covered by the aligned query
    informative: float  # share of the covered pixels that are textured
    smooth: float = math.nan  # when flat: correlation of their faint detail (NaN: none)
    flat: bool = False  # both (nearly) flat where they overlap: compared by ``smooth`` only
    # Share of the aligned query that lies on the work: a crop lies inside the work (1.0), a
    # canvas holds the whole work (overlap 1.0); a drawing overlapping another only in part
    # (a shared glyph, side by side) has both near one half.
    query_overlap: float = 1.0
    # The alignment the figures were measured with (2x3, query thumbnail px -> work thumbnail
    # px, after ECC refinement when that won): the finer check starts from it.
    align: np.ndarray | None = field(default=None, compare=False, repr=False)
    # Share of the work's textured pixels that agree, no band discounted (an overlay on a blank
    # margin adds texture of the query's own, which ``agree`` counts against it)
    work_agree: float = 0.0
    # Share of the coloured pixels whose chroma moved beyond a global gain (NaN: a grey side)
    colour_moved: float = math.nan
    work_chroma: float = math.nan  # mean chroma magnitude of each side on the compared pixels
    query_chroma: float = math.nan
    # Share of the compared pixels where the query is strongly coloured (dm.chroma_moved), when
    # the work is grey: a small red object on a white page has a low mean
    query_coloured: float = math.nan
    # Share of pixels whose hue is reversed (both sides coloured, Cb/Cr pointing apart) in the
    # densest dm.reversed_window square: a blue cross where the work has a red one
    colour_reversed: float = math.nan

    def as_evidence(self) -> dict[str, object]:
        ev: dict[str, object] = {
            "dense_agree": round(self.agree, 3),
            "dense_agree_band": round(self.agree_band, 3),
            "dense_diff": round(self.diff, 3),
            "dense_band": self.band,
            "dense_overlap": round(self.overlap, 3),
            "dense_query_overlap": round(self.query_overlap, 3),
        }
        if not math.isnan(self.colour):
            ev["dense_colour"] = round(self.colour, 3)
        if not math.isnan(self.colour_moved):
            ev["dense_colour_moved"] = round(self.colour_moved, 3)
        if not math.isnan(self.colour_reversed):
            ev["dense_colour_reversed"] = round(self.colour_reversed, 3)
        if not math.isnan(self.smooth):
            ev["dense_smooth"] = round(self.smooth, 4)
        return ev


NO_EVIDENCE = DenseCheck(0.0, 0.0, 1.0, math.nan, "", 0.0, 0.0)


def _planes(t: Thumb) -> np.ndarray:
    """float32 h x w x 3: grey, Cb - 128, Cr - 128 (chroma upsampled to the grey size;
    zeros when the thumbnail has none)."""
    g = t.grey.astype(np.float32)
    out = np.zeros((*g.shape, 3), np.float32)
    out[:, :, 0] = g
    if t.chroma is not None and t.chroma.size:
        c = cv2.resize(
            t.chroma.astype(np.float32) - 128.0,
            (g.shape[1], g.shape[0]),
            interpolation=cv2.INTER_LINEAR,
        )
        out[:, :, 1:] = c
    return out


def _detail_corr(
    w: np.ndarray, q: np.ndarray, core: np.ndarray, mask: np.ndarray, dm: DenseMeasure
) -> float:
    """Correlation of the faint detail of two flat pictures: the slightly blurred grey
    fields minus their broad local ramps (a plain gradient's layout is shared by countless
    pictures; its faint shapes are not). NaN when the work has no such detail."""
    if int(core.sum()) < 64:
        return math.nan
    ramp = RampFit(GaussianWindow(mask, dm.detail_trend_sigma))
    rw, rq = (
        (b - ramp(b)[0])[core]
        for b in (cv2.GaussianBlur(a, (0, 0), dm.detail_sigma) for a in (w, q))
    )
    sw, sq = float(rw.std()), float(rq.std())
    if sw < dm.detail_min_std or sq < 1e-3:
        return math.nan
    return float(((rw - rw.mean()) * (rq - rq.mean())).mean() / (sw * sq))


def _envelope_diff(
    w: np.ndarray,
    q: np.ndarray,
    core: np.ndarray,
    dm: DenseMeasure,
    tone_on: np.ndarray | None = None,
) -> np.ndarray:
    """Pixels where grey levels differ beyond a global gain/offset and one pixel of slack, or,
    given ``tone_on`` (the pixels to fit it on), beyond a monotone tone curve when that
    explains more of them. The dense check fits the curve only when the structure all but
    agrees (dm.tone_min_agree): fitted for every candidate, it let two more siblings through on
    the benchmark, for ~1.5 ms more per candidate."""
    differ = core & (envelope_residual(w, q, core, dm.gain_range)[0] > dm.diff_grey)
    if tone_on is not None and differ.any():
        toned = tone_mapped(w, q, tone_on, dm)
        if toned is not w:
            toned_differ = core & (
                envelope_residual(toned, q, core, dm.gain_range)[0] > dm.diff_grey
            )
            if int(toned_differ.sum()) < int(differ.sum()):
                return toned_differ
    return differ


@dataclass(frozen=True)
class _Colours:
    cosine: float = math.nan
    moved: float = math.nan
    work: float = math.nan
    query: float = math.nan
    query_coloured: float = math.nan
    reversed_hue: float = math.nan


def _colours(
    wc: np.ndarray, qc: np.ndarray, keep: np.ndarray, chroma_px: float, dm: DenseMeasure
) -> _Colours:
    """Chroma cosine, moved share and both sides' mean chroma on ``keep`` (cosine and moved
    share NaN when either side is grey). ``chroma_px``: the size of one query chroma pixel in
    work pixels, which the per-pixel comparison has to allow for."""
    a, b = wc[keep], qc[keep]
    if len(a) < 8:
        return _Colours()
    ma, mb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    na, nb = float(ma.mean()), float(mb.mean())
    if na < dm.min_chroma:
        # Away from the overlap's edge: the coarse query chroma, upsampled, mixes in what lies
        # beyond it (a coloured border the trim took off) up to 1.5 chroma pixels inside.
        inner = _inside(keep, max(1.0, 1.5 * chroma_px))
        a2, b2 = (wc[inner], qc[inner]) if int(inner.sum()) >= 8 else (a, b)
        added = (np.linalg.norm(b2, axis=1) > dm.chroma_moved) & (
            np.linalg.norm(a2, axis=1) < dm.coloured
        )
        return _Colours(work=na, query=nb, query_coloured=float(added.mean()))
    if nb < dm.min_chroma:
        return _Colours(work=na, query=nb)
    dot = float((a * b).sum())
    cosine = dot / (np.sqrt(float((a * a).sum()) * float((b * b).sum())) + 1e-6)
    coarse = _as_coarse(wc, chroma_px)  # (the work's chroma as coarse as the query's)
    return _Colours(
        cosine,
        _colour_moved(coarse, qc, keep, chroma_px, dm),
        na,
        nb,
        reversed_hue=_colour_reversed(coarse, qc, keep, chroma_px, dm),
    )


def _inside(keep: np.ndarray, px: float) -> np.ndarray:
    """``keep`` without its pixels within ``px`` of its edge, the frame's edge included (a
    query covering the whole work meets what lay beyond it there)."""
    r = math.ceil(px)
    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    eroded = cv2.erode(keep.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return eroded > 0


def _as_coarse(wc: np.ndarray, chroma_px: float) -> np.ndarray:
    """The work's chroma at the query's chroma resolution, when that is coarser."""
    if chroma_px <= 2.0:
        return wc
    h, w = wc.shape[:2]
    small = (max(1, round(w / chroma_px)), max(1, round(h / chroma_px)))
    return cv2.resize(cv2.resize(wc, small, interpolation=cv2.INTER_AREA), (w, h))


def _colour_reversed(
    wc: np.ndarray, qc: np.ndarray, keep: np.ndarray, chroma_px: float, dm: DenseMeasure
) -> float:
    """Share of pixels whose hue is reversed (both sides coloured, Cb/Cr vectors pointing more
    than ~107 degrees apart) in the densest ``dm.reversed_window`` square, away from the
    overlap's edge; ``wc`` is the work's chroma through ``_as_coarse``. No benign change turns
    a hue round; a sibling's badge in another colour does, in one place (JPEG bleed and
    misregistration: at most 3 % of a window)."""
    inner = _inside(keep, max(1.0, chroma_px))
    mw, mq = np.linalg.norm(wc, axis=2), np.linalg.norm(qc, axis=2)
    cosine = (wc * qc).sum(axis=2) / (mw * mq + 1e-6)
    coloured = (mw > dm.reversed_chroma) & (mq > dm.reversed_chroma)
    rev = inner & coloured & (cosine < dm.reversed_cosine)
    return densest(rev, dm.reversed_window)


def _colour_moved(
    wc: np.ndarray, qc: np.ndarray, keep: np.ndarray, chroma_px: float, dm: DenseMeasure
) -> float:
    """Share of the coloured pixels whose Cb/Cr moved beyond one global gain. A query shown
    small (a canvas, a centre crop) has coarse chroma in the work's frame: ``wc`` is the work's
    brought to the same resolution (``_as_coarse``), and the pixels within one query chroma
    pixel of the overlap's edge, where the chroma mixes in what lies beyond, are left out."""
    if chroma_px > 2.0:
        keep = _inside(keep, chroma_px)
    a, b = wc[keep], qc[keep]
    if len(a) < 8:
        return math.nan
    ma, mb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    gain = float((a * b).sum()) / max(float((a * a).sum()), 1e-6)  # query ~ gain * work
    coloured = (ma > dm.coloured) | (mb > dm.coloured)
    moved = coloured & (np.linalg.norm(b - gain * a, axis=1) > dm.chroma_moved)
    return float(moved.sum() / max(int(coloured.sum()), 1))


def dense_check(
    work: Thumb, query: Thumb, A: np.ndarray, dm: DenseMeasure = DEFAULT.dense_measure
) -> DenseCheck:
    """Compare ``query`` warped by ``A`` (2x3, query grey px -> work grey px) with ``work``,
    as aligned and after ECC refinement; the better of the two counts (ECC fixes small
    misalignments, but an overlay can pull it off). About 1-3 ms per candidate."""
    wp = _planes(work)
    wh, ww = wp.shape[:2]
    chroma_px = 0.0  # one query chroma pixel, in work px
    if query.chroma is not None and query.chroma.size:
        chroma_px = transform_scale(np.asarray(A)) * query.grey.shape[1] / query.chroma.shape[1]
    q, A, shrink = shrink_query(
        _planes(query),
        np.asarray(A, dtype=np.float64),
        below=dm.shrink_below,
        margin=dm.shrink_margin,
    )
    warped, mask = warp(q, A, ww, wh)

    def measured(d: DenseCheck, a: np.ndarray) -> DenseCheck:
        on_work = d.overlap * ww * wh  # px of the work frame the query covers
        query_px = abs(float(np.linalg.det(a[:, :2]))) * q.shape[0] * q.shape[1]
        align = (homogeneous(a) @ shrink)[:2]  # in the original query's px
        return replace(d, align=align, query_overlap=min(1.0, on_work / query_px))

    best = measured(_compare(wp, warped, mask, chroma_px, dm), A)
    # (Flat fields need no refinement: their smooth correlation barely feels a pixel.)
    if (best.agree_band < 0.999 or best.diff > 0) and math.isnan(best.smooth):
        corr = refine_ecc(wp[:, :, 0], warped[:, :, 0], mask, dm)
        if corr is not None:
            A2 = after_ecc(A, corr)
            warped2, mask2 = warp(q, A2, ww, wh)
            refined = measured(_compare(wp, warped2, mask2, chroma_px, dm), A2)
            if refined.agree_band - refined.diff > best.agree_band - best.diff:
                best = refined
    return best


def _compare(
    wp: np.ndarray, warped: np.ndarray, mask: np.ndarray, chroma_px: float, dm: DenseMeasure
) -> DenseCheck:
    overlap = float(mask.mean())
    if overlap < dm.min_overlap:
        return NO_EVIDENCE
    w, q = wp[:, :, 0], warped[:, :, 0]
    core = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    win = GaussianWindow(mask, dm.sigma)
    zncc, sw, sq = local_zncc(w, q, win)
    # Where the query is flat and clipped to black or white, a brightness/contrast change has
    # erased whatever faint texture the work had there: no evidence either way.
    clipped = (sq <= dm.min_std) & ((q >= dm.clip_high) | (q <= dm.clip_low))
    info = core & ((sw > dm.min_std) | (sq > dm.min_std)) & ~clipped
    n_info, n_core = int(info.sum()), max(int(core.sum()), 1)
    flat = n_info < dm.flat_share * n_core
    if not flat:
        # A steep gradient varies locally too, and any two gradients in the same direction
        # would "agree" on it: pictures that are flat beyond their local ramps are flat.
        ramp = RampFit(win)
        beyond = (ramp(w)[1] > dm.min_std) | (ramp(q)[1] > dm.min_std)
        n_beyond = int((core & beyond & ~clipped).sum())
        if n_beyond < dm.flat_share * n_core:
            flat, n_info = True, n_beyond
    share_info = n_info / n_core
    if flat:
        # Both (nearly) flat: a gradient wallpaper with faint shapes. No local structure at
        # this threshold, but the faint detail over the gradient is the picture.
        c = _colours(wp[:, :, 1:], warped[:, :, 1:], core, chroma_px, dm)
        return DenseCheck(
            0.0,
            0.0,
            1.0,
            c.cosine,
            "",
            overlap,
            share_info,
            smooth=_detail_corr(w, q, core, mask, dm),
            flat=True,
            colour_moved=c.moved,
            work_chroma=c.work,
            query_chroma=c.query,
            query_coloured=c.query_coloured,
        )
    good = info & (zncc > dm.agree_zncc) & (sw > dm.min_std / 2) & (sq > dm.min_std / 2)
    agree = float(good.sum() / n_info)
    # (clipped query pixels must not bend a tone curve: a washed-out page would flatten it)
    tone_on = core & ~clipped if agree >= dm.tone_min_agree else None
    differ = info & _envelope_diff(w, q, core, dm, tone_on)
    keep_best = np.ones_like(info)
    score_best, band = agree - float(differ.sum() / n_info), ""
    # A band may be discounted when what is left holds half of the *work's* texture: an
    # overlay brings texture of its own (a caption over a white margin can hold most of the
    # query's), the work's is the evidence to keep.
    work_info = info & (sw > dm.min_std)
    n_work = int(work_info.sum())
    work_agree = float((good & work_info).sum() / n_work) if n_work else agree
    for name, sl in edge_bands(core, dm.band).items():
        keep = np.ones_like(info)
        keep[sl] = False
        n = int((info & keep).sum())
        if n == 0 or int((work_info & keep).sum()) < 0.5 * n_work:
            continue
        score = float(((good & keep).sum() - (differ & keep).sum()) / n)
        if score > score_best:
            score_best, band, keep_best = score, name, keep
    n = max(int((info & keep_best).sum()), 1)
    c = _colours(wp[:, :, 1:], warped[:, :, 1:], core & keep_best, chroma_px, dm)
    return DenseCheck(
        agree=agree,
        agree_band=float((good & keep_best).sum() / n),
        diff=float((differ & keep_best).sum() / n),
        colour=c.cosine,
        band=band,
        overlap=overlap,
        informative=share_info,
        work_agree=work_agree,
        colour_moved=c.moved,
        work_chroma=c.work,
        query_chroma=c.query,
        query_coloured=c.query_coloured,
        colour_reversed=c.reversed_hue,
    )
