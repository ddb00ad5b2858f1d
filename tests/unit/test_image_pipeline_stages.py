"""The image pipeline's stage mechanics: judging paths, alternative alignments, local fits."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.image import ImageIndex
from contentmatch_match.image.pipeline import Stage
from contentmatch_match.image.proposers import OrbProposer
from contentmatch_match.image.query import ImageQuery
from contentmatch_match.image.stages import Candidate, Checks, Judgment, SearchContext
from tests.fixtures.images import make_image, to_bytes, transform

pytestmark = pytest.mark.unit


class OneWork:
    """Proposes the first work twice over: under a first and an alternative alignment."""

    name = "one"

    def __init__(self) -> None:
        self.alternatives_made = 0

    def propose(self, q: ImageQuery, ctx: SearchContext) -> Iterator[list[Candidate]]:
        def alternative() -> Candidate:
            self.alternatives_made += 1
            return Candidate(0, self.name, "second", 2.0, 0.6, {"variant": "second"})

        yield [
            Candidate(
                0, self.name, "first", 1.0, 0.8, {"variant": "first"}, alternative=alternative
            )
        ]


class Accepts:
    """Accepts the candidates whose signal it names, and settles their score."""

    def __init__(self, name: str, signals: set[str], sure: bool = True) -> None:
        self.name, self.signals, self.sure = name, signals, sure

    def judge(self, cand: Candidate, checks: Checks, ctx: SearchContext) -> Judgment | None:
        ok = cand.signal in self.signals
        score = cand.prior if self.sure else None
        return Judgment(self.name, ok, "" if ok else "no", {self.name: ok}, score, self.name)


class Abstains:
    name = "abstains"

    def judge(self, cand: Candidate, checks: Checks, ctx: SearchContext) -> Judgment | None:
        return None


@pytest.fixture(scope="module")
def work_fp():
    return fingerprint_image(to_bytes(make_image(41, (480, 360))))


def index_with(work_fp, *stages: Stage) -> ImageIndex:
    idx = ImageIndex(stages=stages)
    idx.add("w", work_fp)
    return idx


def test_an_alternative_is_made_and_judged_only_when_the_first_is_refused(work_fp):
    proposer = OneWork()
    idx = index_with(work_fp, Stage("one", proposer, ((Accepts("a", {"first"}),),), False))
    [hit] = idx.search(work_fp)
    assert (hit.signal, hit.score, proposer.alternatives_made) == ("first", 0.8, 0)

    proposer = OneWork()
    idx = index_with(work_fp, Stage("one", proposer, ((Accepts("a", {"second"}),),), False))
    [hit] = idx.search(work_fp)
    assert (hit.signal, hit.score, proposer.alternatives_made) == ("second", 0.6, 1)
    assert hit.evidence["variant"] == "second" and hit.evidence["verified"] == "a"


def test_the_first_path_that_accepts_decides_and_abstaining_paths_do_not():
    fp = fingerprint_image(to_bytes(make_image(42, (320, 240))))
    paths = (
        (Accepts("refuses", set()),),  # refuses both alignments
        (Abstains(),),  # nothing to say: not an acceptance
        (Accepts("unsure", {"first"}, sure=False),),  # accepts, but settles no score
        (Accepts("second_path", {"second"}),),
    )
    [hit] = index_with(fp, Stage("one", OneWork(), paths, False)).search(fp)
    assert hit.signal == "second" and hit.evidence["verified"] == "second_path"
    assert "refuses" not in hit.evidence  # a refusing path's evidence is not the hit's


def test_nothing_accepted_when_every_path_refuses_or_abstains(work_fp):
    paths = ((Abstains(),), (Accepts("refuses", set()),))
    assert index_with(work_fp, Stage("one", OneWork(), paths, False)).search(work_fp) == []


def homography(src, dst, query_size, work_size, seed):
    H, mask = cv2.findHomography(src.astype(np.float32), dst.astype(np.float32), cv2.RANSAC, 6.0)
    return None if H is None else (H, int(mask.sum()))


class HomographyOnly:
    """Accepts the candidates a local fit aligned by a homography (the mechanism under test
    is the proposer's, not a judge's)."""

    name = "homography"

    def judge(self, cand: Candidate, checks: Checks, ctx: SearchContext) -> Judgment | None:
        if cand.homography is None:
            return Judgment(self.name, False, "affine")
        return Judgment(self.name, True, "", score=cand.prior, verified=self.name)


def test_orb_offers_a_homography_of_the_same_votes_when_the_similarity_is_refused(work_fp):
    stage = Stage("orb", OrbProposer(local_fit=homography), ((HomographyOnly(),),), local=True)
    idx = index_with(work_fp, stage)
    img = make_image(41, (480, 360))
    q = fingerprint_image(to_bytes(transform(img, "perspective_10", seed=2)))
    [hit] = idx.search(q, second_tier="always")
    ev = hit.evidence
    assert hit.signal == "orb" and ev["alignment"] == "homography" and ev["orb_inliers"] >= 16
    # the query frame, mapped by the homography, covers most of the work
    assert ev["region"]["w"] >= 0.6 and ev["region"]["h"] >= 0.6, ev["region"]
    # without a local fit there is nothing to offer
    plain = index_with(work_fp, Stage("orb", OrbProposer(), ((HomographyOnly(),),), local=True))
    assert plain.search(q, second_tier="always") == []
