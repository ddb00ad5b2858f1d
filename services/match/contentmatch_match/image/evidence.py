"""The evidence a match carries (``IndexHit.evidence``, then ``Match.evidence`` on the
``uploads.matched`` event), apart from how the stages compute it.

Public keys, read by the report service and stable within a schema version:

``region``, ``query_region``
    ``{x, y, w, h}`` in 0..1: where the match lies in the work and in the upload.
``phash``, ``pdq``, ``dhash``
    Hamming distances of the whole-picture hashes (lower is closer).
``orb_inliers``
    ORB keypoints that agree on one geometric transform (higher is closer).
``variant``
    Which view of the upload matched: ``original``, ``mirror``, ``trim`` (inside a plain
    border), ``crop`` (a centre crop of the work), ``box`` (a picture on a page).
``verified``
    What accepted a whole-picture, crop or box match: ``dense`` (the thumbnails), ``masked``
    (the masked judge: an everyday edit set aside), ``orb`` or ``hashes`` (fingerprints
    without thumbnails); ORB hits say ``masked`` when that judge accepted them.
``alignment``
    ``homography`` when an ORB match was aligned by a homography (a photo of a screen or a
    print) rather than a similarity.

Diagnostic keys (figures the judges decided on, for people tuning them; not a contract):
``pdq_quality``, ``dhash_v``, ``crop_code``, ``crop_keep``, ``box_code``, ``orb_votes``,
``scale``, ``rotation_deg``, ``masked_*`` and ``grade_*`` (``MaskedCheck.as_evidence``),
``dense_*`` (``DenseCheck.as_evidence``) and ``fine_*``
(``FineCheck.as_evidence``).
"""

from __future__ import annotations

from typing import TypedDict

from contentmatch_match.image.align import map_region
from contentmatch_match.image.stages import Candidate, Checks, Judgment

PUBLIC_KEYS = (
    "region",
    "query_region",
    "phash",
    "pdq",
    "dhash",
    "orb_inliers",
    "variant",
    "verified",
    "alignment",
)


class Region(TypedDict):
    x: float
    y: float
    w: float
    h: float


def hit_evidence(
    cand: Candidate, checks: Checks, judgments: list[Judgment], verified: str | None
) -> dict[str, object]:
    """The evidence of an accepted candidate: what its proposer saw, where the judged
    alignment puts the query (when the proposer asks for it), what the judges measured,
    and how it was verified."""
    ev = dict(cand.evidence)
    if cand.region_from_alignment and checks.can_measure:
        dense = checks.dense
        align = dense.align if dense.align is not None else cand.align
        (qh, qw), (wh, ww) = cand.query.grey.shape, checks.work.grey.shape
        ev["region"] = map_region(align, qw, qh, ww, wh)
    for j in judgments:
        ev.update(j.evidence)
    ev.update(checks.evidence())
    if verified is not None:
        ev["verified"] = verified
    return ev
