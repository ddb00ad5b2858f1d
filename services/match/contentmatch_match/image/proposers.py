"""Proposers: which works to judge, aligned how, and why.

Each proposer reads one kind of code (see ``signals``) and returns ``Candidate``s in batches.
Whole-picture hashes cannot tell a copy from a sibling drawing on their own (a white page
with a few strokes has a nearly fixed pHash; benign copies of clip art reach pHash 24 and
PDQ 100+), so they only propose; the judges decide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import cv2
import numpy as np

from contentmatch_match.image.align import map_region, onto, scale_transform
from contentmatch_match.image.config import ImageMatchConfig
from contentmatch_match.image.page_boxes import page_boxes, ring
from contentmatch_match.image.query import ImageQuery
from contentmatch_match.image.signals.codes import bits, hamming, informative
from contentmatch_match.image.signals.crops import Box, crop_code, rung_box, tiny, zscored
from contentmatch_match.image.signals.orb import nearest_descriptors, similarity
from contentmatch_match.image.signals.vertical import vertical_dhash
from contentmatch_match.image.stages import (
    Candidate,
    HashDistances,
    LocalFit,
    SearchContext,
    closeness,
)
from contentmatch_match.image.tables import CodeTable
from contentmatch_match.image.thumbs import Thumb


class _Near(NamedTuple):
    """A whole-picture candidate's nearest query variant and its distances."""

    comb: float  # what ranks candidates: pHash + PDQ / 4, or dHash
    variant: str
    phash: int
    pdq: int
    dhash: int
    quality: int  # the lower PDQ quality of the two sides


def _nearest_variants(
    q: ImageQuery, ctx: SearchContext, c: np.ndarray, by_dhash: bool
) -> tuple[dict[int, _Near], dict[int, _Near]]:
    """Per candidate (index into ``c``) within the proposer's radius: the nearest variant,
    and the untrimmed one."""
    wp, works, t = ctx.cfg.whole, ctx.works, ctx.tables
    cph, cdh, cpq = (t[n].codes.view[c] for n in ("phash", "dhash", "pdq"))
    has_d = works.has_dhash.view[c][:, 0]
    qmin = np.minimum(works.quality.view[c][:, 0], q.quality)
    best: dict[int, _Near] = {}
    untrimmed: dict[int, _Near] = {}
    for v in q.variants:
        dp, dq = hamming(cph, v.phash), hamming(cpq, v.pdq)
        dd = hamming(cdh, v.dhash) if v.dhash is not None else np.full(len(c), 64, np.int32)
        dd = np.where(has_d, dd, 0 if v.dhash is None else dd)
        for k in range(len(c)):
            p, qd, d = int(dp[k]), int(dq[k]), int(dd[k])
            if by_dhash:
                if v.dhash is None or not has_d[k] or d > wp.dhash_radius:
                    continue
                comb = float(d)
            elif p <= wp.phash_radius or qd <= wp.pdq_radius:
                comb = p + qd / 4.0
            else:
                continue
            near = _Near(comb, v.name, p, qd, d, int(qmin[k]))
            prev = best.get(k)
            if prev is None or comb < prev.comb:
                best[k] = near
            if not v.name:
                untrimmed[k] = near
    return best, untrimmed


def _whole_candidate(
    q: ImageQuery, ctx: SearchContext, slot: int, n: _Near, by_dhash: bool, proposer: str
) -> Candidate:
    wp, hr = ctx.cfg.whole, ctx.cfg.hashes
    p, qd, d, name = n.phash, n.pdq, n.dhash, n.variant
    ev: dict[str, object] = {"phash": p, "pdq": qd, "dhash": d}
    ev.update(variant=name or "original", pdq_quality=n.quality)
    sig = "dhash" if by_dhash else ("phash" if p <= qd / 4 else "pdq")
    dist = {"phash": p, "pdq": qd}.get(sig, d)
    qt, wt = q.thumb, ctx.works.thumbs[slot]
    if qt is not None and name == "mirror":
        qt = qt.mirrored()
    elif qt is not None and name == "trim" and q.trim_box is not None:
        qt = qt.cropped(q.trim_box)
    align = None
    if qt is not None and wt is not None:
        (qh, qw), (wh, ww) = qt.grey.shape, wt.grey.shape
        align = scale_transform(qw, qh, ww, wh)
    return Candidate(
        slot,
        proposer,
        f"{sig}_{name}" if name else sig,
        dist,
        max(closeness(p, wp.phash_radius), closeness(qd, wp.pdq_radius)),
        ev,
        query=qt,
        align=align,
        # Within HMA's PDQ threshold the hashes already say "same picture": the grey levels
        # may differ more (a tone curve, clipping, blur on thin lines).
        lenient_grey=qd <= hr.pdq_alone and n.quality >= hr.pdq_min_quality,
        hashes=HashDistances(p, qd, d, n.quality, name),
    )


def _whole_candidates(
    q: ImageQuery, ctx: SearchContext, cand: set[int], by_dhash: bool, proposer: str
) -> list[Candidate]:
    """The best of ``cand`` by pHash + PDQ / 4 (or by dHash), each with its nearest query
    variant; a trimmed variant is followed by the untrimmed one (a work with a uniform margin
    of its own loses it to the query's border trim, and then only the untrimmed lines up)."""
    if not cand:
        return []
    wp = ctx.cfg.whole
    c = np.array(sorted(cand), dtype=np.int64)
    best, untrimmed = _nearest_variants(q, ctx, c, by_dhash)
    top = wp.dhash_verify_top if by_dhash else wp.verify_top
    out = []
    for k, first in sorted(best.items(), key=lambda kv: kv[1].comb)[:top]:
        attempts = [first]
        if first.variant == "trim" and k in untrimmed:
            attempts.append(untrimmed[k])
        out += [_whole_candidate(q, ctx, int(c[k]), n, by_dhash, proposer) for n in attempts]
    return out


class WholeHashProposer:
    """Works within ``phash_radius`` of any query variant's pHash (original, mirror, trimmed
    border) or within ``pdq_radius`` of the original's PDQ: exact range scans. One 256-bit
    scan costs ~1 ms at 1 M works, so PDQ is scanned with the original only (the variants'
    PDQ is compared on the candidates)."""

    name = "whole"

    def propose(self, q: ImageQuery, ctx: SearchContext) -> Iterator[list[Candidate]]:
        if not q.variants:
            return
        wp, t = ctx.cfg.whole, ctx.tables
        cand: set[int] = set()
        ph = np.stack([v.phash for v in q.variants])
        _lims, _d, ids = t["phash"].fx.range_search(ph, wp.phash_radius + 1)
        cand.update(ids.tolist())
        _lims, _d, ids = t["pdq"].fx.range_search(q.variants[0].pdq[None], wp.pdq_radius + 1)
        cand.update(ids.tolist())
        alive = ctx.alive()
        cand = {c for c in cand if alive[c]}
        ctx.seen |= cand
        yield _whole_candidates(q, ctx, cand, by_dhash=False, proposer=self.name)


class DHashProposer:
    """The few nearest works by dHash (k-NN: blank pages crowd any radius), not yet looked up.
    Symmetric patterns and smooth gradients put pHash/PDQ coefficients near their median,
    where re-encoding flips them, while dHash moves a few bits."""

    name = "dhash"

    def propose(self, q: ImageQuery, ctx: SearchContext) -> Iterator[list[Candidate]]:
        wp, fx = ctx.cfg.whole, ctx.tables["dhash"].fx
        codes = [
            v.dhash for v in q.variants if v.dhash is not None and informative(v.dhash, wp.min_bits)
        ]
        if not codes or fx.ntotal == 0:
            return
        dist, ids = fx.search(np.stack(codes), min(wp.dhash_knn, fx.ntotal))
        alive = ctx.alive()
        near = {int(i) for i in ids[dist <= wp.dhash_radius] if i >= 0}
        near = {c for c in near if alive[c]} - ctx.seen
        ctx.seen |= near
        yield _whole_candidates(q, ctx, near, by_dhash=True, proposer=self.name)


class VerticalDHashProposer:
    """The nearest works by vertical dHash (horizontal stripes), not yet looked up; only the
    dense judges can accept them (no hash rule vouches for them)."""

    name = "dhash_v"

    def propose(self, q: ImageQuery, ctx: SearchContext) -> Iterator[list[Candidate]]:
        wp, fx = ctx.cfg.whole, ctx.tables["dhash_v"].fx
        if not ctx.use_dense or q.thumb is None or fx.ntotal == 0:
            return
        code = vertical_dhash(q.thumb.grey, ctx.cfg.codes.tie)
        if not informative(code, wp.min_bits):
            return
        dist, ids = fx.search(code[None], min(wp.dhash_knn, fx.ntotal))
        alive, thumbs = ctx.alive(), ctx.works.thumbs
        near = [
            (int(d), int(s))
            for d, s in zip(dist[0], ids[0], strict=True)
            if s >= 0
            and d <= wp.vertical_radius
            and alive[s]
            and thumbs[s] is not None
            and int(s) not in ctx.seen
        ]
        out = []
        for d, slot in near[: wp.dhash_verify_top]:
            qt, wt = q.thumb, thumbs[slot]
            (qh, qw), (wh, ww) = qt.grey.shape, wt.grey.shape
            out.append(
                Candidate(
                    slot,
                    self.name,
                    "dhash_v",
                    d,
                    closeness(d, wp.vertical_radius),
                    {"dhash_v": d, "variant": "original"},
                    query=qt,
                    align=scale_transform(qw, qh, ww, wh),
                )
            )
        yield out


def nearest_rows(
    table: CodeTable, box_of: Callable[[int], Box], query: Thumb, ctx: SearchContext
) -> list[tuple[int, int, Box]]:
    """(slot, code distance, work box) of the ``verify_top`` works whose rows of ``table``
    (crop codes of a box of the work) lie nearest the code of ``query``: ``knn`` rows within
    ``radius``, each work by its row whose box looks most like ``query`` in the tiny
    picture, the works ranked by that look."""
    cp = ctx.cfg.crop
    code = crop_code(query.grey, ctx.cfg.codes.tie)
    if bits(code) < ctx.cfg.whole.min_bits:
        return []  # a blank page: every blank crop is near it
    dist, ids = table.fx.search(code[None], min(cp.knn, table.ntotal))
    alive, thumbs = ctx.alive(), ctx.works.thumbs
    q_tiny = tiny(query, cp)
    nearest: dict[int, tuple[float, int, Box]] = {}
    for d, row in zip(dist[0].tolist(), ids[0].tolist(), strict=True):
        if row < 0 or d > cp.radius:
            continue
        slot = int(table.slots(np.array([row]))[0])
        wt = thumbs[slot]
        if not alive[slot] or wt is None:
            continue
        box = box_of(row)
        look = float(np.abs(tiny(wt.cropped(box), cp) - q_tiny).mean())
        if slot not in nearest or look < nearest[slot][0]:
            nearest[slot] = (look, int(d), box)
    ranked = sorted(nearest.items(), key=lambda kv: kv[1])[: cp.verify_top]
    return [(slot, d, box) for slot, (_look, d, box) in ranked]


def closest_keep(work: Thumb, query: Thumb, keep: float, cfg: ImageMatchConfig) -> float:
    """The centred crop of ``work``, within a rung's step of ``keep``, that looks most like
    ``query`` at ``keep_side`` px: a crop between two rungs starts the dense check aligned
    within ~1.5 % of its scale (ECC alone does not pull a striped flag's 7 % back)."""
    cp = cfg.crop
    src = (work.fine if work.fine is not None else work.grey).astype(np.float32)
    side_px = (cp.keep_side, cp.keep_side)
    q = zscored(
        cv2.resize(query.grey.astype(np.float32), side_px, interpolation=cv2.INTER_AREA),
        cp.zscore_floor,
    )
    best, best_look = keep, math.inf
    for j in range(-cp.keep_steps, cp.keep_steps + 1):
        k = min(keep * 2.0 ** (j / cp.keep_step_div), cp.max_keep)
        # The whole work scaled so that the crop is keep_side px: sub-pixel crops of a 64 px
        # thumbnail would move in whole-pixel (3 %) steps.
        side = round(cp.keep_side / k)
        scaled = cv2.resize(src, (side, side), interpolation=cv2.INTER_AREA)
        o = (side - cp.keep_side) // 2
        crop = scaled[o : o + cp.keep_side, o : o + cp.keep_side]
        look = float(np.abs(zscored(crop, cp.zscore_floor) - q).mean())
        if look < best_look:
            best, best_look = cp.keep_side / side, look
    return best


def plain_frame(grey: np.ndarray, cfg: ImageMatchConfig) -> bool:
    """The outer ``frame_px`` rows and columns are (almost all) one grey level."""
    cp = cfg.crop
    v = grey[ring(grey.shape, cp.frame_px)].astype(np.float32)
    return float((np.abs(v - np.median(v)) <= cp.plain_grey).mean()) >= cp.plain_ring


class CropLadderProposer:
    """Centre crops (a zoom, a platform's re-framing): the works with a rung of their crop
    ladder nearest the query's code, each aligned as its nearest rung says once the scale is
    settled between rungs. A query whose frame is plain all round shows a whole object on
    its background, not a cut-out: not proposed."""

    name = "crop"

    def propose(self, q: ImageQuery, ctx: SearchContext) -> Iterator[list[Candidate]]:
        table = ctx.tables["crop"]
        if not ctx.use_dense or q.thumb is None or table.ntotal == 0:
            return
        if plain_frame(q.thumb.grey, ctx.cfg):
            return
        rungs, radius = ctx.cfg.codes.crop_rungs, ctx.cfg.crop.radius
        out = []
        for slot, d, box in nearest_rows(table, lambda r: rung_box(r, rungs), q.thumb, ctx):
            wt = ctx.works.thumbs[slot]
            keep = closest_keep(wt, q.thumb, box[2], ctx.cfg)
            lo = (1.0 - keep) / 2
            out.append(
                Candidate(
                    slot,
                    self.name,
                    "dhash_crop",
                    d,
                    closeness(d, radius),
                    {"crop_code": d, "variant": "crop", "crop_keep": keep},
                    query=q.thumb,
                    align=onto((lo, lo, keep, keep), q.thumb.grey.shape, wt.grey.shape),
                    region_from_alignment=True,
                )
            )
        yield out


class PageBoxProposer:
    """A picture on a page (a screenshot, a post): each of the query's page boxes looked up
    among the works' whole-picture codes (and their drawing inside a uniform margin), aligned
    box to work. One batch per box: the first box with a match ends the stage."""

    name = "boxes"

    def propose(self, q: ImageQuery, ctx: SearchContext) -> Iterator[list[Candidate]]:
        table = ctx.tables["whole"]
        if not ctx.use_dense or q.thumb is None or table.ntotal == 0:
            return
        boxes = table.extras["box"]
        radius = ctx.cfg.crop.radius

        def whole_box(row: int) -> Box:
            return tuple(float(v) for v in boxes.view[row])  # type: ignore[return-value]

        for box in page_boxes(q.thumb, ctx.cfg.boxes):
            qt = q.thumb.cropped(box)
            out = []
            for slot, d, wbox in nearest_rows(table, whole_box, qt, ctx):
                wt = ctx.works.thumbs[slot]
                ev: dict[str, object] = {"box_code": d, "variant": "box"}
                ev["query_region"] = {k: round(v, 4) for k, v in zip("xywh", box, strict=True)}
                ev["region"] = {k: round(v, 4) for k, v in zip("xywh", wbox, strict=True)}
                out.append(
                    Candidate(
                        slot,
                        self.name,
                        "dhash_box",
                        d,
                        closeness(d, radius),
                        ev,
                        query=qt,
                        align=onto(wbox, qt.grey.shape, wt.grey.shape),
                    )
                )
            yield out


class OrbProposer:
    """Local features (crops, rotations, captions, canvases): query descriptors vote for works
    (distinct query keypoints within ``desc_radius``), and the best-voted works' votes must
    hold a RANSAC similarity; its inliers and transform are the proposal."""

    name = "orb"

    def __init__(self, local_fit: LocalFit | None = None) -> None:
        # Another model of the votes (a homography: a photo of a screen or a print), tried
        # when the similarity is not found or its candidate is refused
        self.local_fit = local_fit

    def propose(self, q: ImageQuery, ctx: SearchContext) -> Iterator[list[Candidate]]:
        table, op = ctx.orb, ctx.cfg.orb
        qorb = q.orb if ctx.use_orb else None
        if table is None or qorb is None or table.ntotal == 0 or len(qorb.desc) < op.min_votes:
            return
        qdesc = np.ascontiguousarray(qorb.desc)
        short = table.shortlist(
            qdesc, ctx.alive(), op.probe_radius, op.shortlist, op.min_key_hits, op.probe_budget
        )
        # The shortlist's works matched exactly: each query keypoint votes with its nearest
        # descriptor of the work, within desc_radius
        found: list[_Votes] = []
        for slot in short.tolist():
            feats = table.features(slot)
            if feats is None:
                continue
            qi, wi = nearest_descriptors(qdesc, feats[0], op.desc_radius)
            if len(qi) >= op.min_votes:
                found.append(_Votes(slot, qorb.kp[qi], feats[1][wi]))
        found.sort(key=lambda v: -len(v.src))  # stable: the shortlist's order breaks ties
        out = []
        for votes_of in found[: op.verify_top]:
            cand = self._similarity(q, ctx, votes_of)
            if cand is None:
                cand = self._local(q, ctx, votes_of, None)
            if cand is not None:
                out.append(cand)
        yield out

    def _similarity(self, q: ImageQuery, ctx: SearchContext, v: _Votes) -> Candidate | None:
        op, qorb = ctx.cfg.orb, q.orb
        if qorb is None:
            return None
        qw, qh = qorb.width, qorb.height
        ww, wh = ctx.works.orb_size[v.slot]
        wt = ctx.works.thumbs[v.slot]
        can_dense = q.thumb is not None and wt is not None
        min_inl = op.min_inliers_dense if can_dense else 0
        found = similarity(v.src, v.dst, ww, wh, op, min_inliers=min_inl, dense=can_dense)
        if found is None:
            return None
        M, inliers = found.M, found.inliers
        qpts = v.src[found.mask]
        evidence: dict[str, object] = {
            "orb_inliers": inliers,
            "orb_votes": len(v.src),
            "region": map_region(M, qw, qh, ww, wh),
            "query_region": {
                "x": round(float(qpts[:, 0].min() / qw), 4),
                "y": round(float(qpts[:, 1].min() / qh), 4),
                "w": round(float(np.ptp(qpts[:, 0]) / qw), 4),
                "h": round(float(np.ptp(qpts[:, 1]) / qh), 4),
            },
            "scale": round(found.scale, 3),
            "rotation_deg": round(found.rotation_deg, 2),
        }
        align = None
        if can_dense:
            align = _in_thumbs(np.vstack([M, [0, 0, 1]]), q.thumb, wt, (qw, qh), (ww, wh))[:2]
        return Candidate(
            v.slot,
            self.name,
            "orb",
            float(inliers),
            _orb_prior(inliers, op.min_inliers),
            evidence,
            query=q.thumb if can_dense else None,
            align=align,
            orb_inliers=inliers,
            weight=op.score_weight,
            alternative=(lambda: self._local(q, ctx, v, M)) if can_dense else None,
        )

    def _local(
        self, q: ImageQuery, ctx: SearchContext, v: _Votes, seed: np.ndarray | None
    ) -> Candidate | None:
        """The votes under ``local_fit``'s model (a homography), for the judges that measure
        through one; only for works and queries with thumbnails."""
        qorb, wt = q.orb, ctx.works.thumbs[v.slot]
        if self.local_fit is None or qorb is None or q.thumb is None or wt is None:
            return None
        qw, qh = qorb.width, qorb.height
        ww, wh = ctx.works.orb_size[v.slot]
        fit = self.local_fit(v.src, v.dst, (qw, qh), (ww, wh), seed)
        if fit is None:
            return None
        H, inliers = fit
        corners = np.array([[0, 0, 1], [qw, 0, 1], [qw, qh, 1], [0, qh, 1]], np.float64) @ H.T
        if np.any(corners[:, 2] <= 1e-9):
            return None  # a corner at infinity: no plane seen by a camera
        xy = corners[:, :2] / corners[:, 2:3]
        x0, y0 = np.clip(xy.min(axis=0) / (ww, wh), 0, 1)
        x1, y1 = np.clip(xy.max(axis=0) / (ww, wh), 0, 1)
        region = {
            k: round(float(val), 4)
            for k, val in zip("xywh", (x0, y0, x1 - x0, y1 - y0), strict=True)
        }
        op = ctx.cfg.orb
        return Candidate(
            v.slot,
            self.name,
            "orb",
            float(inliers),
            _orb_prior(inliers, op.min_inliers),
            {
                "orb_inliers": inliers,
                "orb_votes": len(v.src),
                "region": region,
                "alignment": "homography",
            },
            query=q.thumb,
            homography=_in_thumbs(H, q.thumb, wt, (qw, qh), (ww, wh)),
            orb_inliers=inliers,
            weight=op.score_weight,
        )


class _Votes(NamedTuple):
    """One work's correspondences: query ORB px -> work ORB px."""

    slot: int
    src: np.ndarray
    dst: np.ndarray


def _orb_prior(inliers: int, min_inliers: int) -> float:
    return min(1.0, 0.5 + 0.5 * (inliers - min_inliers) / (4.0 * min_inliers))


def _in_thumbs(
    T: np.ndarray,
    q_thumb: Thumb,
    wt: Thumb,
    query_size: tuple[int, int],
    work_size: tuple[int, int],
) -> np.ndarray:
    """A 3x3 between ORB copies (query ORB px -> work ORB px) as one between thumbnails."""
    (qw, qh), (ww, wh) = query_size, work_size
    to_orb = np.diag([qw / q_thumb.grey.shape[1], qh / q_thumb.grey.shape[0], 1.0])
    to_thumb = np.diag([wt.grey.shape[1] / ww, wt.grey.shape[0] / wh, 1.0])
    return to_thumb @ T @ to_orb
