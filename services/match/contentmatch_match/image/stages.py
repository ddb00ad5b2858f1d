"""What stages exchange: candidates (a proposer's "look at this work, aligned so, because")
and judgments (a judge's "yes" or "no", with the figures it decided on)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np

from contentmatch_match.image.config import ImageMatchConfig
from contentmatch_match.image.dense import DenseCheck, dense_check
from contentmatch_match.image.fine import FineCheck, fine_check
from contentmatch_match.image.orb_table import OrbTable
from contentmatch_match.image.query import ImageQuery
from contentmatch_match.image.tables import CodeTable, Works
from contentmatch_match.image.thumbs import Thumb


def closeness(distance: float, radius: float) -> float:
    """A proposal's own score, 1.0 at distance 0 down to 0.5 at the proposer's radius (and
    beyond): how near its code came."""
    return float(max(0.5, min(1.0, 1.0 - distance / (2.0 * max(radius, 1)))))


@dataclass(frozen=True)
class HashDistances:
    """The whole-picture hash distances of a candidate, for the hash rules."""

    phash: int
    pdq: int
    dhash: int
    quality: int  # the lower PDQ quality of the two sides
    variant: str  # "" (as it came), "mirror", "trim"


@dataclass
class Candidate:
    """A work a proposer wants judged, how the query lines up with it, and why."""

    slot: int
    proposer: str  # the proposer's name
    signal: str  # the hit's signal if it is accepted ("phash_trim", "dhash_crop", "orb"...)
    distance: float  # the hit's distance (bits of the proposing code; ORB: inliers)
    prior: float  # the proposal's own score (``closeness``, ORB: from its inliers)
    evidence: dict[str, object]  # what the proposer saw (public keys, see ``evidence``)
    query: Thumb | None = None  # the query thumbnail as aligned (mirrored, trimmed, a box)
    align: np.ndarray | None = None  # 2x3: query thumbnail px -> work thumbnail px
    # 3x3, when the proposer found a perspective (a photo of a screen or a print) rather
    # than an affine alignment: the judges that measure through a 2x3 have nothing to say
    homography: np.ndarray | None = None
    lenient_grey: bool = False  # the hashes already say "same picture" (PDQ within HMA's)
    hashes: HashDistances | None = None  # whole-picture candidates
    orb_inliers: int | None = None  # local-feature candidates
    region_from_alignment: bool = False  # report where the judged alignment puts the query
    weight: float = 1.0  # the final score's factor (a local-feature match ranks lower)
    # Another alignment of the same work, made (and judged) only when this one is refused
    alternative: Callable[[], Candidate | None] | None = field(default=None, repr=False)

    def transform(self) -> np.ndarray | None:
        """3x3 query thumbnail px -> work thumbnail px, whichever alignment it has."""
        if self.homography is not None:
            return self.homography
        if self.align is None:
            return None
        return np.vstack([self.align, [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Judgment:
    """One judge's decision on a candidate. ``score`` and ``verified`` are set by the judge
    that settles the candidate's score (the dense check, the hash rules, ORB inliers)."""

    judge: str
    accepted: bool
    reason: str = ""  # what refused it (or how it passed)
    evidence: dict[str, object] = field(default_factory=dict)
    score: float | None = None
    verified: str | None = None


class Checks:
    """The pixel measurements of one candidate, taken once whichever judges read them."""

    def __init__(self, cand: Candidate, work: Thumb | None, cfg: ImageMatchConfig) -> None:
        self.cand, self.work, self.cfg = cand, work, cfg
        # both sides have thumbnails: the pixel judges decide, the hash rules have no say
        self.has_thumbs = work is not None and cand.query is not None
        self.can_measure = self.has_thumbs and cand.align is not None  # (an affine alignment)
        self.measured: list[str] = []
        self.cache: dict[str, object] = {}  # other judges' measurements, by name

    @cached_property
    def dense(self) -> DenseCheck:
        assert self.work is not None and self.cand.query is not None
        self.measured.append("dense")
        return dense_check(self.work, self.cand.query, self.cand.align, self.cfg.dense_measure)

    @cached_property
    def fine(self) -> FineCheck | None:
        assert self.work is not None and self.cand.query is not None
        found = fine_check(
            self.work, self.cand.query, self.dense, self.cfg.fine_measure, self.cfg.dense_measure
        )
        self.measured.append("fine")
        return found

    def evidence(self) -> dict[str, object]:
        ev: dict[str, object] = {}
        if "dense" in self.measured:
            ev.update(self.dense.as_evidence())
        if "fine" in self.measured and self.fine is not None:
            ev.update(self.fine.as_evidence())
        return ev


@dataclass
class SearchContext:
    """What stages read during one search (under the index's lock)."""

    query: ImageQuery
    cfg: ImageMatchConfig
    works: Works
    tables: dict[str, CodeTable]
    use_dense: bool
    use_orb: bool
    orb: OrbTable | None = None  # the ORB table (None: an index without ORB)
    seen: set[int] = field(default_factory=set)  # slots earlier proposers looked up

    def alive(self) -> np.ndarray:
        return self.works.alive.view[:, 0]


class Proposer(Protocol):
    name: str

    def propose(self, q: ImageQuery, ctx: SearchContext) -> Iterator[list[Candidate]]:
        """Batches of candidates, best first; the stage stops after the first batch that
        had a candidate accepted."""
        ...


class LocalFit(Protocol):
    def __call__(
        self,
        src: np.ndarray,
        dst: np.ndarray,
        query_size: tuple[int, int],
        work_size: tuple[int, int],
        seed: np.ndarray | None,
    ) -> tuple[np.ndarray, int] | None:
        """Another model of keypoint correspondences (query ORB px ``src`` -> work ORB px
        ``dst``, n x 2) than the similarity, a homography say: (3x3, distinct inliers) or
        None. ``seed`` is the similarity found before (2x3), if any."""
        ...


class Judge(Protocol):
    name: str

    def judge(self, cand: Candidate, checks: Checks, ctx: SearchContext) -> Judgment | None:
        """A judgment, or None when this judge has nothing to say on the candidate (it
        needs thumbnails the candidate has not, say)."""
        ...
