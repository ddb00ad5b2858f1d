"""The image pipeline: stages of one proposer and its judges, run in order.

A stage's proposer yields candidates; each is judged (``judges``) along the stage's paths in
order: a path accepts when every judge on it with something to say accepts, at least one
does, and one of them settles the score; the first path that accepts decides. (The default
stages have the pixel judges as the first path, the masked judge for everyday edits next
and, for fingerprints without thumbnails, the hash rules or ORB inliers last.) The first
accepted candidate of a work in a stage is its hit: a proposer may offer a second alignment
of one work (ORB: a homography), judged only when the first is refused. Stages marked
``fallback`` run only while no stage has found anything: the whole-picture hashes first,
then dHash, the vertical dHash, the crop ladder, the page boxes, and ORB local features
last (ORB can also run always, or never: ``second_tier``). A later stage's hit on a work
already found adds its evidence.

Scores (one formula per way of acceptance, then ``round(weight * score, 4)``):
  * dense judges: ``0.5 * prior + 0.5 * agree_band`` (capped at 1), where ``prior`` is the
    proposal's own score (``stages.closeness`` of its code distance; ORB:
    ``0.5 + 0.5 * (inliers - min_inliers) / (4 * min_inliers)``) and ``agree_band`` the
    dense check's agreeing share of textured pixels;
  * ORB confirming a whole-picture candidate, or ORB inliers alone: ``prior``;
  * masked judge: ``0.5 * prior + MaskedRules.agree_weight * agree`` (capped at 1), where
    ``agree`` is the share of informative blocks that agree: below a dense acceptance of
    the same candidate, as part of the picture was set aside;
  * hash rules: the closeness of pHash and PDQ at their hash-only radii, the larger.
  ``weight`` is 1 except for ORB hits (``OrbParams.score_weight``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contentmatch_match.image.config import ImageMatchConfig
from contentmatch_match.image.evidence import hit_evidence
from contentmatch_match.image.homography import PerspectiveFit
from contentmatch_match.image.judges import (
    ColourJudge,
    DenseJudge,
    FineJudge,
    HashRulesJudge,
    MaskedJudge,
    OrbInliersJudge,
    WholeBoxJudge,
)
from contentmatch_match.image.proposers import (
    CropLadderProposer,
    DHashProposer,
    OrbProposer,
    PageBoxProposer,
    VerticalDHashProposer,
    WholeHashProposer,
)
from contentmatch_match.image.stages import (
    Candidate,
    Checks,
    Judge,
    Judgment,
    Proposer,
    SearchContext,
)
from contentmatch_match.index.base import IndexHit


@dataclass(frozen=True)
class Stage:
    """A proposer and the ways its candidates may be accepted: each path is a sequence of
    judges, tried in order until one accepts."""

    name: str
    proposer: Proposer
    paths: Sequence[Sequence[Judge]]
    fallback: bool = True  # run only when no earlier stage found anything
    mark_verified: bool = True  # say in the evidence which judge settled the score
    local: bool = False  # a local-feature stage (``second_tier`` decides whether it runs)


@dataclass(frozen=True)
class Verdict:
    """A candidate's judgments, and the score and evidence when it was accepted."""

    accepted: bool
    judgments: list[Judgment]
    score: float = 0.0
    evidence: dict[str, object] | None = None


def default_stages(cfg: ImageMatchConfig) -> tuple[Stage, ...]:
    dense = DenseJudge(cfg.dense)
    colour = ColourJudge(cfg.dense, cfg.dense_measure.min_chroma)
    fine = FineJudge(cfg.fine)
    hashes = HashRulesJudge(cfg.hashes, cfg.orb, cfg.whole.phash_radius, cfg.whole.pdq_radius)
    pixels = (dense, colour, fine)
    boxed = (dense, colour, WholeBoxJudge(cfg.boxes.min_agree), fine)
    masked = MaskedJudge(cfg)
    return (
        Stage("whole", WholeHashProposer(), (pixels, (masked,), (hashes,)), fallback=False),
        Stage("dhash", DHashProposer(), (pixels, (masked,), (hashes,))),
        Stage("dhash_v", VerticalDHashProposer(), (pixels,)),
        Stage("crop", CropLadderProposer(), (pixels,)),
        Stage("boxes", PageBoxProposer(), (boxed,)),
        Stage(
            "orb",
            OrbProposer(local_fit=PerspectiveFit(cfg.homography)),
            (
                pixels,
                (MaskedJudge(cfg, zoom=True, homography_only=True),),
                (OrbInliersJudge(cfg.orb.min_inliers),),
            ),
            mark_verified=False,
            local=True,
        ),
    )


def judge(
    cand: Candidate, paths: Sequence[Sequence[Judge]], ctx: SearchContext, mark: bool
) -> Verdict:
    checks = Checks(cand, ctx.works.thumbs[cand.slot], ctx.cfg)
    done: list[Judgment] = []
    for path in paths:
        said: list[Judgment] = []
        for j in path:
            found = j.judge(cand, checks, ctx)
            if found is None:
                continue
            said.append(found)
            if not found.accepted:
                break
        done.extend(said)
        settled = [j for j in said if j.score is not None]
        if not said or not said[-1].accepted or not settled:
            continue
        score = round(cand.weight * settled[-1].score, 4)
        verified = settled[-1].verified if mark else None
        return Verdict(True, done, score, hit_evidence(cand, checks, said, verified))
    return Verdict(False, done)


def _runs(stage: Stage, found_before: bool, second_tier: str) -> bool:
    if stage.local:
        return second_tier == "always" or (second_tier == "auto" and not found_before)
    return not (stage.fallback and found_before)


def _stage_hits(stage: Stage, ctx: SearchContext) -> dict[int, IndexHit]:
    """Slot -> hit of the candidates the stage accepts (the first per work)."""
    found: dict[int, IndexHit] = {}
    for batch in stage.proposer.propose(ctx.query, ctx):
        for cand in batch:
            if cand.slot in found:
                continue
            v = judge(cand, stage.paths, ctx, stage.mark_verified)
            while not v.accepted and cand.alternative is not None:
                alt = cand.alternative()
                if alt is None:
                    break
                cand, v = alt, judge(alt, stage.paths, ctx, stage.mark_verified)
            if v.accepted:
                found[cand.slot] = IndexHit(
                    work_id=ctx.works.work_ids[cand.slot],
                    score=v.score,
                    signal=cand.signal,
                    distance=float(cand.distance),
                    evidence=v.evidence or {},
                )
        if found:
            break
    return found


def run(stages: Sequence[Stage], ctx: SearchContext, second_tier: str = "auto") -> list[IndexHit]:
    """Every stage in order (see the module docstring); hits in the order found."""
    hits: dict[str, IndexHit] = {}
    for stage in stages:
        if not _runs(stage, bool(hits), second_tier):
            continue
        for hit in _stage_hits(stage, ctx).values():
            prev = hits.get(hit.work_id)
            if prev is None:
                hits[hit.work_id] = hit
            else:
                prev.evidence.update(hit.evidence)
    return list(hits.values())
