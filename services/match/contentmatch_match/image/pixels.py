"""Local statistics the dense and fine checks share: windows, correlation, envelopes."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from contentmatch_match.image.config import DEFAULT, DenseMeasure


def edge_bands(core: np.ndarray, band: float) -> dict[str, tuple[slice, slice]]:
    """The four edge bands (``band`` of the side) of the box around ``core``."""
    ys, xs = np.nonzero(core)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    by, bx = max(1, round(band * (y1 - y0))), max(1, round(band * (x1 - x0)))
    return {
        "bottom": (slice(y1 - by, y1), slice(None)),
        "top": (slice(y0, y0 + by), slice(None)),
        "left": (slice(None), slice(x0, x0 + bx)),
        "right": (slice(None), slice(x1 - bx, x1)),
    }


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


class RampFit:
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


def envelope_residual(
    w: np.ndarray, q: np.ndarray, fit_on: np.ndarray, gain_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """How far (grey levels) each pixel of ``q`` lies outside what ``w`` explains after a global
    gain/offset within ``gain_range`` (fitted on ``fit_on``) and one pixel of slack:
    (residual map, the fitted work)."""
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
    if not (gain_range[0] < a < gain_range[1]):  # no brightness/contrast change explains it
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


def densest(on: np.ndarray, side: int) -> float:
    """The share of ``on`` pixels in the densest ``side`` x ``side`` square."""
    density = cv2.boxFilter(
        on.astype(np.float32), -1, (side, side), normalize=True, borderType=cv2.BORDER_CONSTANT
    )
    return float(density.max())


def tone_mapped(
    w: np.ndarray, q: np.ndarray, fit_on: np.ndarray, dm: DenseMeasure = DEFAULT.dense_measure
) -> np.ndarray:
    """The work through the monotone tone curve that best maps it onto the query (medians of
    the query per band of work grey levels, made non-decreasing). Brightness, contrast and
    gamma changes clip colour channels one by one, which bends the grey levels in a way no
    gain/offset follows; a monotone curve cannot, however, turn a white patch black where
    the rest of the picture keeps its whites."""
    wv, qv = w[fit_on], q[fit_on]
    if wv.size < dm.tone_min_pixels * 2:
        return w
    bins = np.clip((wv / (256.0 / dm.tone_bins)).astype(np.int32), 0, dm.tone_bins - 1)
    centres, medians = [], []
    for b in range(dm.tone_bins):
        sel = bins == b
        if int(sel.sum()) >= dm.tone_min_pixels:
            centres.append(float(np.median(wv[sel])))
            medians.append(float(np.median(qv[sel])))
    if len(centres) < 2:
        return w
    curve = np.maximum.accumulate(np.array(medians))
    # A curve that flattens the work explains nothing: where a sibling's symbol sits, the
    # query is mostly background, and the medians would map black to white.
    lo, hi = np.percentile(qv, [5, 95])
    if float(curve[-1] - curve[0]) < dm.tone_min_range * float(hi - lo):
        return w
    return np.interp(w, np.array(centres), curve).astype(np.float32)
