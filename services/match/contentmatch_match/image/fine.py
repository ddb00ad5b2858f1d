"""Fine check: a second look, at the query's resolution, at a candidate the dense check passed.

The dense check compares 64 px thumbnails, where a re-encode, a blur or a third-size copy
already moves up to 3 % of the textured pixels. Template siblings hide inside that margin:
two road signs of one template, the waxing and the full moon of one set, ``math_lsub`` and
``math_lsup``, a full and an empty bin. What sets them apart is a *block* of pixels, far (in
grey level) from anything the work has nearby, that a copy does not have. At 128 px, the
size both thumbnails are fingerprinted at, such a block is many pixels wide, while a copy,
once both sides are brought to the same sharpness, leaves only a few scattered ones.

So the query is warped again with the alignment the dense check settled on, now into the
work's 128 px frame; whichever side is sharper is brought down to the other's resolution
(a third-size copy cannot show the work's fine lines); both are blurred slightly (JPEG
blocks, noise); a global gain/offset and one pixel of slack are allowed (the dense check's
envelope test); and the share of overlap pixels still beyond ``diff_grey`` grey levels is
``diff``.

Where the differing pixels lie matters as much as how many there are: a copy's are scattered
along edges (resampling, JPEG ringing), a sibling's gather on the symbol that differs (a lion
for a cross in the same badge, another coat of arms on the same tricolour). ``cluster`` is
the share of differing pixels in the densest ``cluster_window`` square.

Grey levels miss a symbol drawn in the same tones as the one it replaces: a dark dishwasher
rack where a dark washing drum was, another coat of arms of the same greens and golds. Its
*structure* differs all the same: the local correlation of the two pictures is negative
there, at every shift within one pixel, where both are textured. ``structure`` is the share
of such pixels in the densest ``structure_window`` square. A copy's are scattered specks
(resampling); a sibling's fill the symbol.

Edge bands: the dense check may discount one edge band as an overlay. A caption banner or a
letterbox differs all along its edge; a sibling's differing symbol that happens to sit near
an edge (the superscript of ``math_lsup``, the arrow added to a box) does not. The band is
discounted here only when its differences span ``overlay_span`` of the edge, and only along
the top or the bottom (``overlay_edges``): captions, subtitles, tickers and letterbox bars
run there, while a side band that differs is where an ensign keeps its badge (Tasmania's
lion where New South Wales has its cross spans half the fly's height). Bars a platform adds
at the sides are plain, and the trimmed query variant removes them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
from contentmatch_match.image.config import DEFAULT, DenseMeasure, FineMeasure
from contentmatch_match.image.dense import DenseCheck
from contentmatch_match.image.pixels import (
    GaussianWindow,
    densest,
    edge_bands,
    envelope,
    envelope_residual,
    local_zncc,
    tone_mapped,
)
from contentmatch_match.image.thumbs import Thumb


@dataclass(frozen=True)
class FineCheck:
    diff: float  # share of the overlap's pixels that differ (an overlay band discounted)
    band: str  # the edge band discounted as an overlay ("" = none)
    band_span: float  # share of that edge the band's differences span (0 without a band)
    cluster: float = 0.0  # share of differing pixels in the densest ``cluster_window`` square
    # share of pixels of another structure in the densest ``structure_window`` square
    structure: float = 0.0

    def as_evidence(self) -> dict[str, object]:
        ev: dict[str, object] = {
            "fine_diff": round(self.diff, 4),
            "fine_cluster": round(self.cluster, 3),
            "fine_structure": round(self.structure, 3),
        }
        if self.band:
            ev["fine_band"] = self.band
        return ev


def fine_check(
    work: Thumb,
    query: Thumb,
    dense: DenseCheck,
    fm: FineMeasure = DEFAULT.fine_measure,
    dm: DenseMeasure = DEFAULT.dense_measure,
) -> FineCheck | None:
    """Compare ``query`` with the work's fine thumbnail under the dense check's alignment;
    None when either is missing (older fingerprints, works too small to have been shrunk),
    when the query shows the work no sharper than the dense check saw it, or when the
    pictures are flat (the dense check's detail correlation has decided those)."""
    if work.fine is None or dense.align is None or dense.flat:
        return None
    w = work.fine.astype(np.float32)
    wh, ww = w.shape
    ch, cw = work.grey.shape
    A = (np.diag([ww / cw, wh / ch, 1.0]) @ homogeneous(dense.align))[:2]
    scale = transform_scale(A)
    if scale > fm.max_upscale:
        return None
    q, A, _ = shrink_query(query.grey.astype(np.float32), A, below=fm.shrink_below)
    if scale > fm.coarsen_above:
        small = (max(8, round(ww / scale)), max(8, round(wh / scale)))
        w = cv2.resize(cv2.resize(w, small, interpolation=cv2.INTER_AREA), (ww, wh))
    wb = cv2.GaussianBlur(w, (0, 0), fm.blur)
    warped, mask = warp(q, A, ww, wh)
    best = _compare(wb, warped, mask, dense.band, fm, dm)
    if best is not None and (best.diff > 0 or best.structure > 0):
        # ECC at this resolution fixes the sub-pixel misalignment the 64 px fit left; an
        # overlay can pull it off, so the better of the two counts (as in the dense check).
        corr = refine_ecc(w, warped, mask, dm)
        if corr is not None:
            refined = _compare(wb, *warp(q, after_ecc(A, corr), ww, wh), dense.band, fm, dm)
            if refined is not None and (refined.diff, refined.structure) < (
                best.diff,
                best.structure,
            ):
                best = refined
    return best


def _compare(
    wb: np.ndarray,
    warped: np.ndarray,
    mask: np.ndarray,
    band: str,
    fm: FineMeasure,
    dm: DenseMeasure,
) -> FineCheck | None:
    core = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    if int(core.sum()) < fm.min_pixels:
        return None
    qb = cv2.GaussianBlur(warped, (0, 0), fm.blur)
    in_band = np.zeros_like(core)
    if band:
        in_band[edge_bands(core, dm.band)[band]] = True
        in_band &= core
    # Clipped highlights and shadows (a brightness change) hide whatever the work had there;
    # they must not bend the gain/offset fit either (a washed-out page would pull it flat).
    q_high, q_low = qb >= dm.clip_high, qb <= dm.clip_low
    fit_on = core & ~in_band & ~q_high & ~q_low
    # Two global models of the grey levels, and the one that explains more of the overlap
    # judges all of it: a gain/offset (blur spreads thin lines, which a tone curve would
    # follow into the wrong grey levels) or a monotone tone curve (clipped colour channels).
    # One model for the whole overlap: letting each pixel pick would let the curve explain
    # a sibling's symbol while the gain/offset explains its frame.
    best = _judged(wb, qb, core, in_band, band, fit_on, q_high, q_low, fm, dm)
    toned = tone_mapped(wb, qb, fit_on, dm)
    if toned is not wb:  # (no curve fitted: nothing else to judge with)
        check = _judged(toned, qb, core, in_band, band, fit_on, q_high, q_low, fm, dm)
        if (check.diff, check.cluster) < (best.diff, best.cluster):
            best = check
    other = _other_structure(wb, qb, core, fit_on, fm, dm)
    if best.band:
        other &= ~in_band
    return replace(best, structure=densest(other, fm.structure_window))


def _other_structure(
    wb: np.ndarray,
    qb: np.ndarray,
    core: np.ndarray,
    fit_on: np.ndarray,
    fm: FineMeasure,
    dm: DenseMeasure,
) -> np.ndarray:
    """Pixels where both sides are textured and their local structure disagrees (negative
    correlation at every shift within ``structure_reach``) by more than ``structure_grey``
    beyond a global gain/offset: a symbol where the work has another."""
    win = GaussianWindow(core, fm.structure_sigma)
    zncc, sw, sq = local_zncc(wb, qb, win)
    other = core & (sw > fm.structure_min_std) & (sq > fm.structure_min_std) & (zncc < 0)
    wv, qv = wb[fit_on], qb[fit_on]
    if wv.size >= fm.min_pixels:  # (a plain least-squares gain/offset: this is a secondary test)
        gain = float(np.cov(wv, qv)[0, 1] / max(float(wv.var()), 1.0))
        gain = gain if dm.gain_range[0] < gain < dm.gain_range[1] else 1.0
        other &= np.abs(qb - (gain * (wb - wv.mean()) + qv.mean())) > fm.structure_grey
    if not other.any():
        return other
    # The query shifted by d has the window statistics of the query moved by d (away from the
    # overlap's edge, which the core already keeps clear of): one blur per shift.
    mw, mq = win.mean(wb), win.mean(qb)
    r = fm.structure_reach
    pads = [np.pad(a, r, mode="edge") for a in (qb, mq, sq)]
    h, w = qb.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dx or dy:
                qs, mqs, sqs = (p[r - dy : r - dy + h, r - dx : r - dx + w] for p in pads)
                shifted = (win.mean(wb * qs) - mw * mqs) / (sw * sqs + 1.0)
                other &= shifted < 0
    return other


def _judged(
    w: np.ndarray,
    qb: np.ndarray,
    core: np.ndarray,
    in_band: np.ndarray,
    band: str,
    fit_on: np.ndarray,
    q_high: np.ndarray,
    q_low: np.ndarray,
    fm: FineMeasure,
    dm: DenseMeasure,
) -> FineCheck:
    """The fine check's figures with the work's grey levels modelled by ``w`` (and a
    gain/offset fitted on ``fit_on``)."""
    residual, wf = envelope_residual(w, qb, fit_on, dm.gain_range)
    near_high, near_low = wf >= dm.clip_high - fm.clip_slack, wf <= dm.clip_low + fm.clip_slack
    clipped = (q_high & near_high) | (q_low & near_low)
    differ = core & ~clipped & (residual > dm.diff_grey)
    span = 0.0
    if in_band.any():
        axis = 0 if band in ("top", "bottom") else 1  # collapse across the band: along the edge
        along = in_band.any(axis=axis)
        span = float((differ & in_band).any(axis=axis)[along].mean())
    # (a side band still stays out of the grey-level fit: whatever differs there must not
    # bend it)
    discount = band if span >= fm.overlay_span and band in fm.overlay_edges else ""
    keep = core & ~clipped
    if discount:
        keep &= ~in_band
    n = max(int(keep.sum()), 1)
    # Clusters are counted with ``cluster_reach`` px of slack: a pixel or two of misregistration
    # lines the edges of a compact dark dot with differences; another symbol differs beyond.
    counted = keep & (envelope(wf, qb, fm.cluster_reach) > dm.diff_grey)
    diff = float((differ & keep).sum() / n)
    return FineCheck(diff, discount, span, densest(counted, fm.cluster_window))
