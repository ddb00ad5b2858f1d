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
worst band along one edge (<= ``BAND`` of the side) may be discounted, and the figures are
reported with it discounted; siblings differ in their middle, which no band removes. What
must be left is half of the *work's* texture, and ``work_agree`` (agreement on the work's
textured pixels, no band discounted) is what the overlay may not drag down: a banner over a
blank margin brings texture of its own, often more than a small drawing has.
The decision thresholds live in ``contentmatch_match.index.image``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

WORK_THUMB_SIDE = 64  # work grey thumbnails are kept this long in the index (<= 4 KB/work)
SIGMA = 2.0  # Gaussian window of the local statistics, in work-thumbnail pixels
MIN_STD = 6.0  # local grey std below which a pixel is flat (on both sides: not evidence)
FLAT_SHARE = 0.02  # overlaps with fewer textured pixels than this are compared as flat
AGREE_ZNCC = 0.5  # local ZNCC above which a textured pixel agrees
DIFF_GREY = 48.0  # grey levels outside the neighbour envelope that make a pixel differ
MIN_CHROMA = 6.0  # mean chroma magnitude below which an image counts as grey
COLOURED = 12.0  # chroma magnitude (Cb/Cr levels) from which a pixel counts as coloured ...
CHROMA_MOVED = 30.0  # ... and by how much its Cb/Cr may move beyond the global gain
REVERSED_CHROMA = 30.0  # chroma magnitude on both sides from which a hue can be reversed ...
REVERSED_COSINE = -0.3  # ... when the two Cb/Cr vectors point this far apart (> 107 degrees)
REVERSED_WINDOW = 8  # work-thumbnail px: the square in which reversed pixels are counted
CLIP_LOW, CLIP_HIGH = 6.0, 249.0  # grey levels at which a query pixel counts as clipped
# Gains a brightness/contrast change can have: beyond, the grey levels were inverted or flattened
GAIN_RANGE = (0.2, 5.0)
BAND = 0.3  # widest edge band (share of the side) that may be discounted as an overlay
ECC_ITERS = 30
DETAIL_SIGMA = 1.0  # blur (work-thumbnail px) before flat pictures' detail is compared (JPEG)
DETAIL_TREND_SIGMA = 8.0  # ... after removing ramps this broad (the gradient)
DETAIL_MIN_STD = 1.0  # grey std of that detail a flat work needs for it to be evidence
TONE_BINS = 16  # bands of work grey levels of the tone curve (tone_mapped) ...
TONE_MIN_PIXELS = 12  # ... each needing this many pixels to have a say
TONE_MIN_RANGE = 0.5  # share of the query's grey range the curve must span to be a model
# Structure agreeing on at least this share of the textured pixels: only then may the dense
# check explain grey levels with a tone curve rather than a gain/offset
TONE_MIN_AGREE = 0.98


@dataclass(frozen=True)
class Thumb:
    """A thumbnail: grey levels and (optionally, coarser) Cb/Cr planes, 128 = neutral."""

    grey: np.ndarray
    chroma: np.ndarray | None = None
    # Works only: the grey thumbnail as fingerprinted (up to 128 px), kept for the fine check
    # (``image_fine``) when ``grey`` has been shrunk for the dense check.
    fine: np.ndarray | None = None

    def mirrored(self) -> Thumb:
        c = None if self.chroma is None else self.chroma[:, ::-1]
        return Thumb(self.grey[:, ::-1], c)

    def cropped(self, box: tuple[float, float, float, float]) -> Thumb:
        """Crop to a normalised (x, y, w, h) box, both planes."""

        def crop(a: np.ndarray) -> np.ndarray:
            h, w = a.shape[:2]
            x0, y0 = round(box[0] * w), round(box[1] * h)
            x1 = max(x0 + 2, round((box[0] + box[2]) * w))
            y1 = max(y0 + 2, round((box[1] + box[3]) * h))
            return a[y0:y1, x0:x1]

        return Thumb(crop(self.grey), None if self.chroma is None else crop(self.chroma))

    @property
    def nbytes(self) -> int:
        extra = sum(0 if a is None else a.nbytes for a in (self.chroma, self.fine))
        return int(self.grey.nbytes + extra)


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
    # Share of the compared pixels where the query is strongly coloured (CHROMA_MOVED), when
    # the work is grey: a small red object on a white page has a low mean
    query_coloured: float = math.nan
    # Share of pixels whose hue is reversed (both sides coloured, Cb/Cr pointing apart) in the
    # densest REVERSED_WINDOW square: a blue cross where the work has a red one
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


def work_thumbnail(thumb: Thumb) -> Thumb:
    """The copy the index keeps per work: grey area-averaged to ``WORK_THUMB_SIDE`` (aspect
    kept) for the dense check, and the fingerprinted grey as it came for the fine check."""
    g = thumb.grey
    h, w = g.shape
    f = max(h, w) / WORK_THUMB_SIDE
    fine = None
    if f > 1:
        size = (max(1, round(w / f)), max(1, round(h / f)))
        g = cv2.resize(g, size, interpolation=cv2.INTER_AREA)
        fine = np.ascontiguousarray(thumb.grey, dtype=np.uint8)
    return Thumb(np.ascontiguousarray(g, dtype=np.uint8), thumb.chroma, fine)


def edge_bands(core: np.ndarray) -> dict[str, tuple[slice, slice]]:
    """The four edge bands (``BAND`` of the side) of the box around ``core``."""
    ys, xs = np.nonzero(core)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    by, bx = max(1, round(BAND * (y1 - y0))), max(1, round(BAND * (x1 - x0)))
    return {
        "bottom": (slice(y1 - by, y1), slice(None)),
        "top": (slice(y0, y0 + by), slice(None)),
        "left": (slice(None), slice(x0, x0 + bx)),
        "right": (slice(None), slice(x1 - bx, x1)),
    }


def scale_transform(qw: int, qh: int, ww: int, wh: int) -> np.ndarray:
    """Query thumbnail px -> work thumbnail px when both show the same full picture."""
    return np.array([[ww / qw, 0.0, 0.0], [0.0, wh / qh, 0.0]], dtype=np.float64)


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


def transform_scale(A: np.ndarray) -> float:
    """The linear scale of a 2x3 transform (geometric mean of its two axes)."""
    return float(np.sqrt(abs(np.linalg.det(A[:, :2]))))


def homogeneous(A: np.ndarray) -> np.ndarray:
    """A 2x3 transform as 3x3, for composing."""
    return np.vstack([A, [0, 0, 1]])


def shrink_query(
    q: np.ndarray, A: np.ndarray, below: float, margin: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shrink the query first when ``A`` shrinks it below ``below`` (warpAffine alone
    aliases), to ``margin`` times the size ``A`` shows it at: (query, transform from it,
    3x3 original query px -> its px)."""
    s = transform_scale(A)
    shrink = np.eye(3)
    if s < below:
        h, w = q.shape[:2]
        nw, nh = max(8, round(w * s * margin)), max(8, round(h * s * margin))
        shrink = np.diag([nw / w, nh / h, 1.0])
        q = cv2.resize(q, (nw, nh), interpolation=cv2.INTER_AREA)
        A = A @ np.linalg.inv(shrink)
    return q, A, shrink


def after_ecc(A: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """ECC found W with work(x) ~ warped(W x): the aligned transform is W^-1 A."""
    return (np.linalg.inv(homogeneous(corr.astype(np.float64))) @ homogeneous(A))[:2]


def warp(q: np.ndarray, A: np.ndarray, ww: int, wh: int) -> tuple[np.ndarray, np.ndarray]:
    warped = cv2.warpAffine(
        q, A, (ww, wh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    ones = np.ones(q.shape[:2], np.float32)
    mask = cv2.warpAffine(ones, A, (ww, wh), flags=cv2.INTER_LINEAR, borderValue=0) > 0.99
    return warped, mask


def refine_ecc(work: np.ndarray, warped: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """ECC refinement (work <- warped query grey), a 2x3 affine correction or None."""
    if mask.mean() < 0.1:
        return None
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        _cc, warp = cv2.findTransformECC(
            work,
            warped,
            warp,
            cv2.MOTION_AFFINE,
            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERS, 1e-4),
            mask.astype(np.uint8),
            3,
        )
    except cv2.error:
        return None
    # A correction of a few pixels and a few degrees is alignment; more is the ECC wandering.
    if np.abs(warp[:, 2]).max() > 6 or np.abs(warp[:, :2] - np.eye(2)).max() > 0.15:
        return None
    return warp


class GaussianWindow:
    """Gaussian window means normalised by the mask, so that the edges of the overlap do not
    read as black. One per (mask, sigma): the ZNCC and the ramp fit share it."""

    def __init__(self, mask: np.ndarray, sigma: float) -> None:
        self.m = mask.astype(np.float32)
        self.sigma = sigma
        self.gm = np.maximum(self._blur(self.m), 1e-3)

    def _blur(self, a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (0, 0), self.sigma, borderType=cv2.BORDER_CONSTANT)

    def mean(self, a: np.ndarray) -> np.ndarray:
        return self._blur(a * self.m) / self.gm


def local_zncc(
    w: np.ndarray, q: np.ndarray, win: GaussianWindow
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local ZNCC map and local std maps."""
    e = win.mean
    mw, mq = e(w), e(q)
    vw = np.maximum(e(w * w) - mw * mw, 0)
    vq = np.maximum(e(q * q) - mq * mq, 0)
    cov = e(w * q) - mw * mq
    sw, sq = np.sqrt(vw), np.sqrt(vq)
    zncc = cov / (sw * sq + 1.0)
    return zncc, sw, sq


@functools.lru_cache(maxsize=16)
def _centred_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx -= w / 2
    yy -= h / 2
    xx.flags.writeable = yy.flags.writeable = False  # shared by the cache
    return xx, yy


class _RampFit:
    """The plane (ramp) fitted to a picture in each window: a linear gradient is fitted
    exactly, edges and texture are not. Closed form from Gaussian moments, OpenCV only (a
    BLAS thread pool would fight FAISS and OpenCV for the cores); the moments of the pixel
    grid are computed once per window and serve both pictures."""

    def __init__(self, win: GaussianWindow) -> None:
        self.e = e = win.mean
        self.xx, self.yy = xx, yy = _centred_grid(*win.m.shape)
        self.ex, self.ey = ex, ey = e(xx), e(yy)
        self.vx, self.vy = e(xx * xx) - ex * ex, e(yy * yy) - ey * ey
        self.cxy = e(xx * yy) - ex * ey
        self.det = np.maximum(self.vx * self.vy - self.cxy * self.cxy, 1e-3)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the fitted plane's value at each pixel, the grey std left around it)."""
        e, xx, yy = self.e, self.xx, self.yy
        ei = e(x)
        cix, ciy = e(x * xx) - ei * self.ex, e(x * yy) - ei * self.ey
        bx = (self.vy * cix - self.cxy * ciy) / self.det  # slopes of the plane
        by = (self.vx * ciy - self.cxy * cix) / self.det
        fitted = ei + bx * (xx - self.ex) + by * (yy - self.ey)
        left = e(x * x) - ei * ei - (bx * cix + by * ciy)
        return fitted, np.sqrt(np.maximum(left, 0))


def _detail_corr(w: np.ndarray, q: np.ndarray, core: np.ndarray, mask: np.ndarray) -> float:
    """Correlation of the faint detail of two flat pictures: the slightly blurred grey
    fields minus their broad local ramps (a plain gradient's layout is shared by countless
    pictures; its faint shapes are not). NaN when the work has no such detail."""
    if int(core.sum()) < 64:
        return math.nan
    ramp = _RampFit(GaussianWindow(mask, DETAIL_TREND_SIGMA))
    rw, rq = (
        (b - ramp(b)[0])[core] for b in (cv2.GaussianBlur(a, (0, 0), DETAIL_SIGMA) for a in (w, q))
    )
    sw, sq = float(rw.std()), float(rq.std())
    if sw < DETAIL_MIN_STD or sq < 1e-3:
        return math.nan
    return float(((rw - rw.mean()) * (rq - rq.mean())).mean() / (sw * sq))


def envelope_residual(
    w: np.ndarray, q: np.ndarray, fit_on: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """How far (grey levels) each pixel of ``q`` lies outside what ``w`` explains after a global
    gain/offset (fitted on ``fit_on``) and one pixel of slack: (residual map, the fitted work)."""
    wv, qv = w[fit_on], q[fit_on]
    if wv.size < 8 or float(wv.std()) < 1e-3:
        return np.zeros(w.shape, np.float32), w.astype(np.float32)
    # Trimmed least squares: an overlay (caption banner) must not bend the global fit.
    sel = np.ones(len(wv), bool)
    a, b = 1.0, float(np.median(qv - wv))
    for _ in range(3):
        ws, qs = wv[sel], qv[sel]
        var = float(ws.var()) if len(ws) >= 8 else 0.0
        if var < 1.0:  # (nearly) flat: an offset is all a fit can say
            break
        a = float(((ws - ws.mean()) * (qs - qs.mean())).mean() / var)
        b = float(qs.mean() - a * ws.mean())
        r = np.abs(qv - (a * wv + b))
        sel = r <= np.percentile(r, 70)
    if not (GAIN_RANGE[0] < a < GAIN_RANGE[1]):  # no brightness/contrast change explains it
        a, b = 1.0, float(np.median(qv - wv))
    wf = (a * w + b).astype(np.float32)
    return envelope(wf, q), wf


def envelope(wf: np.ndarray, q: np.ndarray, reach: int = 1) -> np.ndarray:
    """How far each pixel of ``q`` lies outside the min..max of the (fitted) work within
    ``reach`` pixels, and vice versa: misalignment up to ``reach`` costs nothing."""
    k = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    lo_w, hi_w = cv2.erode(wf, k), cv2.dilate(wf, k)
    lo_q, hi_q = cv2.erode(q, k), cv2.dilate(q, k)
    r1 = np.maximum(np.maximum(lo_w - q, q - hi_w), 0)
    r2 = np.maximum(np.maximum(lo_q - wf, wf - hi_q), 0)
    return np.maximum(r1, r2)


def _envelope_diff(
    w: np.ndarray, q: np.ndarray, core: np.ndarray, tone_on: np.ndarray | None = None
) -> np.ndarray:
    """Pixels where grey levels differ beyond a global gain/offset and one pixel of slack, or,
    given ``tone_on`` (the pixels to fit it on), beyond a monotone tone curve when that
    explains more of them. The dense check fits the curve only when the structure all but
    agrees (TONE_MIN_AGREE): fitted for every candidate, it let two more siblings through on
    the benchmark, for ~1.5 ms more per candidate."""
    differ = core & (envelope_residual(w, q, core)[0] > DIFF_GREY)
    if tone_on is not None and differ.any():
        toned = tone_mapped(w, q, tone_on)
        if toned is not w:
            toned_differ = core & (envelope_residual(toned, q, core)[0] > DIFF_GREY)
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


def _colours(wc: np.ndarray, qc: np.ndarray, keep: np.ndarray, chroma_px: float) -> _Colours:
    """Chroma cosine, moved share and both sides' mean chroma on ``keep`` (cosine and moved
    share NaN when either side is grey). ``chroma_px``: the size of one query chroma pixel in
    work pixels, which the per-pixel comparison has to allow for."""
    a, b = wc[keep], qc[keep]
    if len(a) < 8:
        return _Colours()
    ma, mb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    na, nb = float(ma.mean()), float(mb.mean())
    if na < MIN_CHROMA:
        # Away from the overlap's edge: the coarse query chroma, upsampled, mixes in what lies
        # beyond it (a coloured border the trim took off) up to 1.5 chroma pixels inside.
        inner = _inside(keep, max(1.0, 1.5 * chroma_px))
        a2, b2 = (wc[inner], qc[inner]) if int(inner.sum()) >= 8 else (a, b)
        added = (np.linalg.norm(b2, axis=1) > CHROMA_MOVED) & (
            np.linalg.norm(a2, axis=1) < COLOURED
        )
        return _Colours(work=na, query=nb, query_coloured=float(added.mean()))
    if nb < MIN_CHROMA:
        return _Colours(work=na, query=nb)
    dot = float((a * b).sum())
    cosine = dot / (np.sqrt(float((a * a).sum()) * float((b * b).sum())) + 1e-6)
    coarse = _as_coarse(wc, chroma_px)  # (the work's chroma as coarse as the query's)
    return _Colours(
        cosine,
        _colour_moved(coarse, qc, keep, chroma_px),
        na,
        nb,
        reversed_hue=_colour_reversed(coarse, qc, keep, chroma_px),
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


def _colour_reversed(wc: np.ndarray, qc: np.ndarray, keep: np.ndarray, chroma_px: float) -> float:
    """Share of pixels whose hue is reversed (both sides coloured, Cb/Cr vectors pointing more
    than ~107 degrees apart) in the densest ``REVERSED_WINDOW`` square, away from the
    overlap's edge; ``wc`` is the work's chroma through ``_as_coarse``. No benign change turns
    a hue round; a sibling's badge in another colour does, in one place (JPEG bleed and
    misregistration: at most 3 % of a window)."""
    inner = _inside(keep, max(1.0, chroma_px))
    mw, mq = np.linalg.norm(wc, axis=2), np.linalg.norm(qc, axis=2)
    cosine = (wc * qc).sum(axis=2) / (mw * mq + 1e-6)
    rev = inner & (mw > REVERSED_CHROMA) & (mq > REVERSED_CHROMA) & (cosine < REVERSED_COSINE)
    return densest(rev, REVERSED_WINDOW)


def densest(on: np.ndarray, side: int) -> float:
    """The share of ``on`` pixels in the densest ``side`` x ``side`` square."""
    density = cv2.boxFilter(
        on.astype(np.float32), -1, (side, side), normalize=True, borderType=cv2.BORDER_CONSTANT
    )
    return float(density.max())


def _colour_moved(wc: np.ndarray, qc: np.ndarray, keep: np.ndarray, chroma_px: float) -> float:
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
    coloured = (ma > COLOURED) | (mb > COLOURED)
    moved = coloured & (np.linalg.norm(b - gain * a, axis=1) > CHROMA_MOVED)
    return float(moved.sum() / max(int(coloured.sum()), 1))


def dense_check(work: Thumb, query: Thumb, A: np.ndarray) -> DenseCheck:
    """Compare ``query`` warped by ``A`` (2x3, query grey px -> work grey px) with ``work``,
    as aligned and after ECC refinement; the better of the two counts (ECC fixes small
    misalignments, but an overlay can pull it off). About 1-3 ms per candidate."""
    wp = _planes(work)
    wh, ww = wp.shape[:2]
    chroma_px = 0.0  # one query chroma pixel, in work px
    if query.chroma is not None and query.chroma.size:
        chroma_px = transform_scale(np.asarray(A)) * query.grey.shape[1] / query.chroma.shape[1]
    q, A, shrink = shrink_query(
        _planes(query), np.asarray(A, dtype=np.float64), below=0.7, margin=1.25
    )
    warped, mask = warp(q, A, ww, wh)

    def measured(d: DenseCheck, a: np.ndarray) -> DenseCheck:
        on_work = d.overlap * ww * wh  # px of the work frame the query covers
        query_px = abs(float(np.linalg.det(a[:, :2]))) * q.shape[0] * q.shape[1]
        align = (homogeneous(a) @ shrink)[:2]  # in the original query's px
        return replace(d, align=align, query_overlap=min(1.0, on_work / query_px))

    best = measured(_compare(wp, warped, mask, chroma_px), A)
    # (Flat fields need no refinement: their smooth correlation barely feels a pixel.)
    if (best.agree_band < 0.999 or best.diff > 0) and math.isnan(best.smooth):
        corr = refine_ecc(wp[:, :, 0], warped[:, :, 0], mask)
        if corr is not None:
            A2 = after_ecc(A, corr)
            warped2, mask2 = warp(q, A2, ww, wh)
            refined = measured(_compare(wp, warped2, mask2, chroma_px), A2)
            if refined.agree_band - refined.diff > best.agree_band - best.diff:
                best = refined
    return best


def _compare(wp: np.ndarray, warped: np.ndarray, mask: np.ndarray, chroma_px: float) -> DenseCheck:
    overlap = float(mask.mean())
    if overlap < 0.05:
        return NO_EVIDENCE
    w, q = wp[:, :, 0], warped[:, :, 0]
    core = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    win = GaussianWindow(mask, SIGMA)
    zncc, sw, sq = local_zncc(w, q, win)
    # Where the query is flat and clipped to black or white, a brightness/contrast change has
    # erased whatever faint texture the work had there: no evidence either way.
    clipped = (sq <= MIN_STD) & ((q >= CLIP_HIGH) | (q <= CLIP_LOW))
    info = core & ((sw > MIN_STD) | (sq > MIN_STD)) & ~clipped
    n_info, n_core = int(info.sum()), max(int(core.sum()), 1)
    flat = n_info < FLAT_SHARE * n_core
    if not flat:
        # A steep gradient varies locally too, and any two gradients in the same direction
        # would "agree" on it: pictures that are flat beyond their local ramps are flat.
        ramp = _RampFit(win)
        beyond = (ramp(w)[1] > MIN_STD) | (ramp(q)[1] > MIN_STD)
        n_beyond = int((core & beyond & ~clipped).sum())
        if n_beyond < FLAT_SHARE * n_core:
            flat, n_info = True, n_beyond
    share_info = n_info / n_core
    if flat:
        # Both (nearly) flat: a gradient wallpaper with faint shapes. No local structure at
        # this threshold, but the faint detail over the gradient is the picture.
        c = _colours(wp[:, :, 1:], warped[:, :, 1:], core, chroma_px)
        return DenseCheck(
            0.0,
            0.0,
            1.0,
            c.cosine,
            "",
            overlap,
            share_info,
            smooth=_detail_corr(w, q, core, mask),
            flat=True,
            colour_moved=c.moved,
            work_chroma=c.work,
            query_chroma=c.query,
            query_coloured=c.query_coloured,
        )
    good = info & (zncc > AGREE_ZNCC) & (sw > MIN_STD / 2) & (sq > MIN_STD / 2)
    agree = float(good.sum() / n_info)
    # (clipped query pixels must not bend a tone curve: a washed-out page would flatten it)
    tone_on = core & ~clipped if agree >= TONE_MIN_AGREE else None
    differ = info & _envelope_diff(w, q, core, tone_on)
    keep_best = np.ones_like(info)
    score_best, band = agree - float(differ.sum() / n_info), ""
    # A band may be discounted when what is left holds half of the *work's* texture: an
    # overlay brings texture of its own (a caption over a white margin can hold most of the
    # query's), the work's is the evidence to keep.
    work_info = info & (sw > MIN_STD)
    n_work = int(work_info.sum())
    work_agree = float((good & work_info).sum() / n_work) if n_work else agree
    for name, sl in edge_bands(core).items():
        keep = np.ones_like(info)
        keep[sl] = False
        n = int((info & keep).sum())
        if n == 0 or int((work_info & keep).sum()) < 0.5 * n_work:
            continue
        score = float(((good & keep).sum() - (differ & keep).sum()) / n)
        if score > score_best:
            score_best, band, keep_best = score, name, keep
    n = max(int((info & keep_best).sum()), 1)
    c = _colours(wp[:, :, 1:], warped[:, :, 1:], core & keep_best, chroma_px)
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


def tone_mapped(w: np.ndarray, q: np.ndarray, fit_on: np.ndarray) -> np.ndarray:
    """The work through the monotone tone curve that best maps it onto the query (medians of
    the query per band of work grey levels, made non-decreasing). Brightness, contrast and
    gamma changes clip colour channels one by one, which bends the grey levels in a way no
    gain/offset follows; a monotone curve cannot, however, turn a white patch black where
    the rest of the picture keeps its whites."""
    wv, qv = w[fit_on], q[fit_on]
    if wv.size < TONE_MIN_PIXELS * 2:
        return w
    bins = np.clip((wv / (256.0 / TONE_BINS)).astype(np.int32), 0, TONE_BINS - 1)
    centres, medians = [], []
    for b in range(TONE_BINS):
        sel = bins == b
        if int(sel.sum()) >= TONE_MIN_PIXELS:
            centres.append(float(np.median(wv[sel])))
            medians.append(float(np.median(qv[sel])))
    if len(centres) < 2:
        return w
    curve = np.maximum.accumulate(np.array(medians))
    # A curve that flattens the work explains nothing: where a sibling's symbol sits, the
    # query is mostly background, and the medians would map black to white.
    lo, hi = np.percentile(qv, [5, 95])
    if float(curve[-1] - curve[0]) < TONE_MIN_RANGE * float(hi - lo):
        return w
    return np.interp(w, np.array(centres), curve).astype(np.float32)
