"""Judges: each accepts or refuses a candidate on the figures it reads, with evidence.

A stage asks its judges in order; one that has nothing to say (``None``) is skipped, the
first refusal ends the candidate, and at least one judge must have accepted. Hashes and ORB
only propose: where both sides have thumbnails, the dense judges decide (the aligned query
must reproduce the work in structure, grey levels and colour), and the fine judge looks
again at 128 px. Fingerprints without thumbnails (older payloads) are judged by the hash
rules or ORB inliers, as before thumbnails existed.
"""

from __future__ import annotations

import numpy as np

from contentmatch_match.image.config import (
    DEFAULT,
    DenseRules,
    FineRules,
    HashRules,
    ImageMatchConfig,
    OrbParams,
)
from contentmatch_match.image.dense import DenseCheck
from contentmatch_match.image.fine import FineCheck
from contentmatch_match.image.masked import MaskedCheck, masked_check
from contentmatch_match.image.signals.orb import matcher, similarity
from contentmatch_match.image.stages import (
    Candidate,
    Checks,
    HashDistances,
    Judgment,
    SearchContext,
    closeness,
)
from contentmatch_match.image.thumbs import Thumb


def dense_score(prior: float, agree_band: float) -> float:
    """The score of a candidate the dense check accepted: half its proposal's own score,
    half the share of textured pixels that agree."""
    return float(min(1.0, 0.5 * prior + 0.5 * agree_band))


class DenseJudge:
    """The aligned 64 px thumbnails agree in structure and grey levels: the query covers
    enough of the work, lies on it (a crop) or holds it (a canvas), agrees on the textured
    pixels (an edge band may be an overlay) and differs in grey level on few of them; two
    near-flat pictures must share their faint detail. Settles the score."""

    name = "dense"

    def __init__(self, rules: DenseRules) -> None:
        self.r = rules

    def judge(self, cand: Candidate, checks: Checks, ctx: SearchContext) -> Judgment | None:
        if not checks.can_measure:
            return None
        d = checks.dense
        reason = self.refusal(d, cand.lenient_grey)
        score = dense_score(cand.prior, d.agree_band)
        return Judgment(self.name, not reason, reason, score=score, verified="dense")

    def refusal(self, d: DenseCheck, lenient_grey: bool = False) -> str:
        """What refuses the dense figures ("" when nothing does)."""
        r = self.r
        if max(d.overlap, d.query_overlap) < r.min_contained:
            return "contained"  # overlapping in part only, side by side
        if d.overlap < r.min_overlap:
            return "overlap"
        if d.flat:
            # Both flat where they overlap: their faint detail decides, and pictures without
            # any (plain gradients, blank pages) are not identifiable at all.
            return "" if d.smooth >= r.flat_min_corr else "flat_detail"
        if not (d.agree_band >= r.accept and d.work_agree >= r.min_agree):
            return "structure"
        if not d.diff <= (r.max_diff_pdq if lenient_grey else r.max_diff):
            return "grey_levels"
        return ""


class ColourJudge:
    """Colours agree where the structure does: no pixel's Cb/Cr moved beyond one global
    saturation gain on more than a share of the coloured pixels, no hue turned round in one
    place, no colour on a grey work, and one chroma cosine for the whole overlap."""

    name = "colour"

    def __init__(self, rules: DenseRules, min_chroma: float) -> None:
        self.r, self.min_chroma = rules, min_chroma

    def judge(self, cand: Candidate, checks: Checks, ctx: SearchContext) -> Judgment | None:
        if not checks.can_measure:
            return None
        reason = self.refusal(checks.dense, cand.lenient_grey)
        return Judgment(self.name, not reason, reason)

    def refusal(self, d: DenseCheck, lenient_grey: bool = False) -> str:
        r = self.r
        min_colour = r.min_colour_pdq if lenient_grey and not d.flat else r.min_colour
        if d.colour_moved > r.max_colour_moved:  # NaN (a grey side) does not refuse
            return "colour_moved"  # recoloured in part: another flag of the same layout
        if d.colour_reversed > r.max_colour_reversed:
            return "colour_reversed"  # a badge in the opposite colour
        if self.colour_added(d):
            return "colour_added"  # colours where the work has none
        if d.colour < min_colour:  # NaN (a grey side) does not refuse
            return "colour_cosine"
        return ""

    def colour_added(self, d: DenseCheck) -> bool:
        r = self.r
        return d.work_chroma < self.min_chroma and (
            d.query_chroma > r.colour_added or d.query_coloured > r.colour_added_share
        )


class WholeBoxJudge:
    """A box found on a page is the picture itself: it must agree without an edge band set
    aside as an overlay (the stem of a big black letter passed for a page icon with its worst
    band discounted)."""

    name = "whole_box"

    def __init__(self, min_agree: float) -> None:
        self.min_agree = min_agree

    def judge(self, cand: Candidate, checks: Checks, ctx: SearchContext) -> Judgment | None:
        if not checks.can_measure:
            return None
        ok = checks.dense.agree >= self.min_agree
        return Judgment(self.name, ok, "" if ok else "band_needed")


class FineJudge:
    """At 128 px, what differs is few pixels, scattered (a copy's resampling), not a block
    (a template sibling's other symbol) nor another structure in the same tones."""

    name = "fine"

    def __init__(self, rules: FineRules) -> None:
        self.r = rules

    def judge(self, cand: Candidate, checks: Checks, ctx: SearchContext) -> Judgment | None:
        if not checks.can_measure or checks.fine is None:
            return None
        reason = self.refusal(checks.fine)
        return Judgment(self.name, not reason, reason)

    def refusal(self, f: FineCheck) -> str:
        r = self.r
        if f.diff > r.max_diff:
            return "fine_diff"
        if f.cluster > r.max_cluster:
            return "fine_cluster"
        if f.structure > r.max_structure:
            return "fine_structure"
        return ""


class MaskedJudge:
    """Everyday edits the pixel judges refuse (caption bands, a logo or watermark over the
    picture, a colour grade with a vignette, a photo of a screen): compared block by block
    (``masked.masked_check``), the blocks that differ must be explained by an overlay
    (translucent, or opaque bands along the top or bottom), colours by one grade model, and
    what is left, with the edit undone, must pass the pixel judges as a plain copy. With
    ``zoom``, a candidate showing less of the work than ``limits.min_overlap`` (a deep zoom)
    is judged by the stricter zoom limits instead, and needs ``zoom_min_inliers``."""

    name = "masked"

    def __init__(self, cfg: ImageMatchConfig, zoom: bool = False, homography_only: bool = False):
        self.cfg, self.zoom, self.homography_only = cfg, zoom, homography_only
        self.dense = DenseJudge(cfg.dense)
        self.colour = ColourJudge(cfg.dense, cfg.dense_measure.min_chroma)
        self.fine = FineJudge(cfg.fine)

    def judge(self, cand: Candidate, checks: Checks, ctx: SearchContext) -> Judgment | None:
        transform = cand.transform()
        if not checks.has_thumbs or transform is None:
            return None
        # A similarity that shows less of the work than a plain copy must (a deep zoom) is
        # judged here too: the dense judges refuse it on overlap alone.
        deep = checks.can_measure and checks.dense.overlap < self.cfg.masked.limits.min_overlap
        if self.homography_only and cand.homography is None and not deep:
            return None
        # A grade model explains a cast over a grey work as well as a red cross where the
        # work's is black: colour where the work has none refuses here as for a plain copy.
        if checks.can_measure and self.colour.colour_added(checks.dense):
            return Judgment(self.name, False, "colour_added")
        mr = self.cfg.masked
        m = masked_check(checks.work, cand.query, transform, self.cfg.masked_measure)
        checks.cache[self.name] = m
        ev: dict[str, object] = {**m.as_evidence(), "verified": "masked"}
        if self.zoom and m.overlap < mr.limits.min_overlap:
            inliers = cand.orb_inliers or 0
            ok = inliers >= mr.zoom_min_inliers and m.accepted(mr.zoom)
            reason = "" if ok else "zoom"
        else:
            reason = "" if m.accepted(mr.limits) else "blocks"
            reason = reason or self._restored_refusal(m, checks)
        score = float(min(1.0, 0.5 * cand.prior + mr.agree_weight * m.agree))
        return Judgment(self.name, not reason, reason, ev, score=score, verified="masked")

    def _restored_refusal(self, m: MaskedCheck, checks: Checks) -> str:
        """The query with the edit undone, judged by the pixel judges as a plain copy."""
        if m.restored is None or m.restored_align is None:
            return "nothing_restored"
        restored = Candidate(
            checks.cand.slot, self.name, "", 0, 0.0, {}, Thumb(*m.restored), m.restored_align
        )
        sub = Checks(restored, checks.work, self.cfg)
        reason = self.dense.refusal(sub.dense) or self.colour.refusal(sub.dense)
        if not reason and sub.fine is not None:
            reason = self.fine.refusal(sub.fine)
        return f"restored_{reason}" if reason else ""


class HashRulesJudge:
    """Whole-picture candidates without thumbnails on both sides: ORB confirms geometrically,
    or all three hashes are close, or the hash rules of the first calibration hold and ORB
    (on both sides) does not refute them."""

    name = "hash_rules"

    def __init__(self, rules: HashRules, op: OrbParams, phash_radius: int, pdq_radius: int):
        self.r, self.op = rules, op
        self.phash_radius, self.pdq_radius = phash_radius, pdq_radius

    def judge(self, cand: Candidate, checks: Checks, ctx: SearchContext) -> Judgment | None:
        h = cand.hashes
        if checks.has_thumbs or h is None:
            return None
        r = self.r
        inl = self._orb_inliers(cand, ctx)
        ev: dict[str, object] = {} if inl is None else {"orb_inliers": inl}
        if inl is not None and inl >= r.orb_confirm:
            return Judgment(self.name, True, "orb", ev, score=cand.prior, verified="orb")
        strong = h.phash <= r.strict_phash and h.pdq <= r.strict_pdq and h.dhash <= r.strict_dhash
        if strong or (self._rules(h) and (inl is None or inl >= r.orb_refute)):
            score = max(closeness(h.phash, r.phash_alone), closeness(h.pdq, r.pdq_alone))
            return Judgment(self.name, True, "hashes", ev, score=score, verified="hashes")
        return Judgment(self.name, False, "hashes", ev)

    def _rules(self, h: HashDistances) -> bool:
        r = self.r
        if h.phash <= r.phash_alone or (h.pdq <= r.pdq_alone and h.quality >= r.pdq_min_quality):
            return True
        return h.phash <= r.loose_phash and h.pdq <= r.loose_pdq and h.dhash <= r.loose_dhash

    def _orb_inliers(self, cand: Candidate, ctx: SearchContext) -> int | None:
        """ORB inliers of a similarity query -> work, 0 when none is plausible, None when
        ORB cannot check (mirrored copies, too few keypoints, an index without ORB)."""
        q, op, slot = ctx.query, self.op, cand.slot
        size = ctx.works.orb_size[slot]
        qorb = q.orb if ctx.use_orb else None
        if (
            ctx.orb is None
            or qorb is None
            or cand.hashes is None
            or cand.hashes.variant == "mirror"  # ORB descriptors are not mirror invariant
            or len(qorb.desc) < op.min_votes
            or size is None
        ):
            return None
        feats = ctx.orb.features(slot)
        if feats is None or len(feats[0]) < op.min_votes:
            return None
        wdesc, wkp = feats
        matches = matcher().match(np.ascontiguousarray(qorb.desc), np.ascontiguousarray(wdesc))
        good = [m for m in matches if m.distance <= op.desc_radius]
        if len(good) < op.min_votes:
            return 0
        src = qorb.kp[[m.queryIdx for m in good]]
        dst = wkp[np.array([m.trainIdx for m in good])]
        found = similarity(src, dst, *size, op, min_inliers=self.r.orb_confirm)
        return 0 if found is None else found.inliers


class OrbInliersJudge:
    """Local-feature candidates without thumbnails: the RANSAC inliers alone (the proposer
    keeps only similarities with ``OrbParams.min_inliers`` spread over the work)."""

    name = "orb_inliers"

    def __init__(self, min_inliers: int) -> None:
        self.min_inliers = min_inliers

    def judge(self, cand: Candidate, checks: Checks, ctx: SearchContext) -> Judgment | None:
        if checks.has_thumbs or cand.orb_inliers is None:
            return None
        ok = cand.orb_inliers >= self.min_inliers
        return Judgment(self.name, ok, "" if ok else "inliers", score=cand.prior, verified="orb")


def dense_accepts(
    d: DenseCheck, lenient_grey: bool = False, cfg: ImageMatchConfig = DEFAULT
) -> bool:
    """The dense and colour judges' decision on figures already measured."""
    dense = DenseJudge(cfg.dense)
    colour = ColourJudge(cfg.dense, cfg.dense_measure.min_chroma)
    return not dense.refusal(d, lenient_grey) and not colour.refusal(d, lenient_grey)
