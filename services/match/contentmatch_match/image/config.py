"""Every threshold of the image wing, in one frozen configuration, grouped by stage.

``ImageMatchConfig()`` is the calibrated default; an index takes another one for an
experiment (``dataclasses.replace`` on a group). Each field says what it decides; the
calibration history behind the figures is in ``docs/image-calibration.md``, and what each
stage does in ``docs/image-pipeline.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CodeParams:
    """How the index derives codes from a work's thumbnail (changing one changes stored rows)."""

    tie: float = 4.0  # grey levels two cells must differ by to set a rise/fall bit (flat: tie)
    # Share of each side each centred crop of the crop ladder keeps (steps of 2^(1/5)).
    crop_rungs: tuple[float, ...] = (0.5, 0.574, 0.66, 0.758)


@dataclass(frozen=True)
class WholeProposal:
    """Proposers of whole-picture candidates (pHash/PDQ ranges, then dHash nearest)."""

    phash_radius: int = 12  # pHash distance (any query variant) that proposes a work ...
    pdq_radius: int = 70  # ... or PDQ distance (original query only)
    verify_top: int = 8  # candidates judged, nearest by pHash + PDQ / 4
    dhash_radius: int = 10  # dHash distance of a work proposed by the dHash k-NN ...
    dhash_knn: int = 8  # ... among this many nearest (a range search drowns in blank pages)
    dhash_verify_top: int = 2  # ... of which this many are judged
    min_bits: int = 8  # a code with fewer set (or unset) bits is a blank page: not looked up
    vertical_radius: int = 6  # vertical dHash distance, among the dhash_knn nearest


@dataclass(frozen=True)
class CropProposal:
    """The crop ladder (centre crops) and the tiny picture that ranks its candidates."""

    knn: int = 32  # nearest crop-code rows looked up ...
    radius: int = 32  # ... kept within this distance (of 256 bits) ...
    verify_top: int = 3  # ... and the works nearest by their tiny picture judged
    tiny: int = 12  # side of the tiny picture (grey + chroma) ...
    tiny_chroma: float = 24.0  # ... with chroma in units of this many Cb/Cr levels
    zscore_floor: float = 8.0  # grey std below which a picture is not stretched (tiny, keep)
    keep_side: int = 48  # px at which a crop's scale is settled between rungs ...
    keep_steps: int = 8  # ... trying this many steps either side of the rung ...
    keep_step_div: float = 40.0  # ... of 2^(1/keep_step_div) each
    max_keep: float = 0.87  # never a crop keeping more (nearly the whole: other stages' case)
    frame_px: int = 3  # a query whose outer frame_px rows and columns ...
    plain_grey: float = 10.0  # ... lie within this many grey levels of their median ...
    plain_ring: float = 0.99  # ... on this share is a whole object: the ladder does not propose


@dataclass(frozen=True)
class PageBoxParams:
    """Where pictures lie on a page (``page_boxes``) and inside a work's margin."""

    ring_px: int = 2  # outer rows and columns that tell the page colour
    page_tol: float = 12.0  # grey levels from the page's that make content
    bar_share: float = 0.85  # a row or column that is content this far across is furniture
    stroke_px: int = 3  # content thinner than this (at 128 px) is text or a rule
    join_px: int = 3  # gaps this wide (at 128 px) inside one picture are closed
    min_box: float = 0.04  # share of the page a box must cover ...
    max_box: float = 0.81  # ... and at most (beyond, the page is the picture)
    max_boxes: int = 2  # largest parts looked up per query (and the box holding all parts)
    min_part: float = 0.01  # share of the page below which a part is a glyph
    min_furniture: float = 0.05  # share of the page that must be content outside the box
    surround_px: int = 2  # the band around a box that must be mostly page ...
    max_surround: float = 0.3  # ... at most this share of it content
    sparse_edge: float = 0.35  # an edge row or column with less content is trimmed off
    margin_tol: float = 10.0  # grey levels within which a work's margin is uniform ...
    margin_share: float = 0.98  # ... on this share of a margin row or column ...
    margin_min: float = 0.04  # ... and the margin is at least this share of the side
    min_agree: float = 0.8  # the box judge: agreement without an edge band set aside


@dataclass(frozen=True)
class OrbParams:
    """Local features: the ORB proposer (votes, RANSAC similarity) and its acceptance."""

    desc_radius: int = 56  # a query descriptor's nearest in a work counts within this (of 256)
    # The inverted file (``image.orb_table``): which descriptor bits make a key (chosen on the
    # tuning corpus: rarely flipped between a copy's corresponding descriptors, balanced,
    # little correlated), probes within this many bits of the query's keys, rarest key first
    # until ``probe_budget`` postings are read, and the works the probes hit most (at least
    # ``min_key_hits`` times) read and matched exactly
    key_bits: tuple[int, ...] = tuple(range(24))
    probe_radius: int = 1
    probe_budget: int = 300_000
    shortlist: int = 16
    min_key_hits: int = 2
    min_votes: int = 8  # distinct query keypoints voting for a work before RANSAC
    verify_top: int = 8  # at most this many works verified with RANSAC per query
    ransac_px: float = 6.0  # reprojection threshold, px of the work's ORB copy (<= 640 px)
    ransac_iters: int = 2000
    ransac_confidence: float = 0.995
    ransac_refine: int = 10
    min_inliers: int = 16  # inliers (distinct keypoints) of a match without a dense check
    min_inliers_dense: int = 8  # ... and with one to follow
    scale_range: tuple[float, float] = (0.2, 6.0)  # plausible query -> work scale
    max_rotation: float = 25.0  # degrees (quarter turns are not this stage's)
    min_spread: float = 0.2  # inliers span this share of the work (both ways without dense)
    score_weight: float = 0.9  # a local-feature match ranks below a whole-picture one


@dataclass(frozen=True)
class HashRules:
    """The judge of fingerprints without thumbnails (older payloads): hashes and ORB only."""

    phash_alone: int = 8  # pHash within this: a hash-only match (and its score scale)
    pdq_alone: int = 31  # PDQ within this (Meta HMA's threshold), with both qualities ...
    pdq_min_quality: int = 30  # ... at least this; also: dense grey levels may differ more
    loose_phash: int = 14  # the first calibration's combined rule: all three within these
    loose_pdq: int = 70
    loose_dhash: int = 18
    strict_phash: int = 4  # without a geometric check: all three hashes this close
    strict_pdq: int = 31
    strict_dhash: int = 10
    orb_confirm: int = 16  # ORB inliers that confirm a whole-picture candidate ...
    orb_refute: int = 8  # ... fewer than this with ORB on both sides overrule the hash rules


@dataclass(frozen=True)
class DenseRules:
    """The dense judges: what the aligned 64 px thumbnails must show to accept."""

    accept: float = 0.8  # agreeing share of textured pixels (worst edge band discounted) ...
    min_agree: float = 0.5  # ... and of the work's textured pixels without the discount
    max_diff: float = 0.03  # textured pixels whose grey level differs (band discounted)
    min_colour: float = 0.8  # chroma cosine when both sides have colour
    max_diff_pdq: float = 0.08  # ... the limits when PDQ already says "same picture"
    min_colour_pdq: float = 0.7
    max_colour_moved: float = 0.25  # coloured pixels moved beyond a global saturation gain
    max_colour_reversed: float = 0.15  # hues turned round in the densest 8 x 8 px window
    colour_added: float = 18.0  # query mean chroma on a grey work ...
    colour_added_share: float = 0.02  # ... or share of strongly coloured pixels there
    min_overlap: float = 0.25  # share of the work the query must show
    min_contained: float = 0.75  # share of one inside the other (a crop or a canvas)
    flat_min_corr: float = 0.85  # two flat pictures: correlation of their faint detail


@dataclass(frozen=True)
class FineRules:
    """The fine judge at 128 px: template siblings differ in a block of pixels."""

    max_diff: float = 0.015  # share of the overlap's pixels that may still differ
    max_cluster: float = 0.28  # differing share of the densest 8 x 8 px window
    max_structure: float = 0.15  # other-structure share of the densest 12 x 12 px window


@dataclass(frozen=True)
class DenseMeasure:
    """How the dense check measures (``image.dense``): windows, levels, ECC, tone curve."""

    work_thumb_side: int = 64  # work grey thumbnails kept this long for the dense check
    sigma: float = 2.0  # Gaussian window of the local statistics, work-thumbnail px
    min_std: float = 6.0  # local grey std below which a pixel is flat
    flat_share: float = 0.02  # overlaps with fewer textured pixels are compared as flat
    agree_zncc: float = 0.5  # local ZNCC above which a textured pixel agrees
    diff_grey: float = 48.0  # grey levels outside the neighbour envelope: a pixel differs
    min_chroma: float = 6.0  # mean chroma magnitude below which a picture is grey
    coloured: float = 12.0  # chroma magnitude from which a pixel counts as coloured ...
    chroma_moved: float = 30.0  # ... and how far its Cb/Cr may move beyond the global gain
    reversed_chroma: float = 30.0  # chroma on both sides from which a hue can be reversed ...
    reversed_cosine: float = -0.3  # ... when the Cb/Cr vectors point this far apart
    reversed_window: int = 8  # work-thumbnail px: the square reversed pixels are counted in
    clip_low: float = 6.0  # grey levels at which a query pixel counts as clipped
    clip_high: float = 249.0
    gain_range: tuple[float, float] = (0.2, 5.0)  # plausible brightness/contrast gains
    band: float = 0.3  # widest edge band (share of the side) discounted as an overlay
    min_overlap: float = 0.05  # overlap below which there is no evidence at all
    shrink_below: float = 0.7  # query shown smaller than this: shrunk before warping ...
    shrink_margin: float = 1.25  # ... to this many times its shown size
    ecc_iters: int = 30
    ecc_min_mask: float = 0.1  # overlap below which ECC is not tried
    ecc_max_shift: float = 6.0  # px: a larger ECC correction is wandering, not alignment
    ecc_max_linear: float = 0.15  # ... and so is a larger change of the linear part
    detail_sigma: float = 1.0  # blur before flat pictures' detail is compared (JPEG)
    detail_trend_sigma: float = 8.0  # ... after removing ramps this broad
    detail_min_std: float = 1.0  # grey std of that detail a flat work needs
    tone_bins: int = 16  # bands of work grey levels of the tone curve ...
    tone_min_pixels: int = 12  # ... each needing this many pixels to have a say
    tone_min_range: float = 0.5  # share of the query's grey range the curve must span
    tone_min_agree: float = 0.98  # structure agreement from which a tone curve may explain


@dataclass(frozen=True)
class FineMeasure:
    """How the fine check measures at 128 px (``image.fine``)."""

    blur: float = 1.0  # Gaussian blur (px at 128) of both sides: JPEG blocks, noise
    overlay_span: float = 0.5  # share of the edge a band's differences span to be an overlay
    overlay_edges: tuple[str, ...] = ("top", "bottom")  # ... and the edges it may run along
    shrink_below: float = 0.8  # query shown smaller than this: shrunk first
    coarsen_above: float = 1.25  # query shown larger (upscaled): the work loses that detail
    max_upscale: float = 1.6  # beyond: nothing finer than the dense check to look at
    clip_slack: float = 20.0  # grey levels: a clipped pixel says nothing near the work's
    min_pixels: int = 64  # overlap pixels below which the check has nothing to say
    cluster_window: int = 8  # px: the square differing pixels are counted together in
    cluster_reach: int = 2  # px of misregistration forgiven when counting them
    structure_sigma: float = 1.5  # Gaussian window (px) of the local correlation ...
    structure_min_std: float = 4.0  # ... where both sides vary at least this much ...
    structure_reach: int = 1  # ... negative at every shift within this many px ...
    structure_grey: float = 12.0  # ... and this far from the work after a gain/offset
    structure_window: int = 12  # px: the square such pixels are counted together in


@dataclass(frozen=True)
class MaskedMeasure:
    """How the masked judge measures (``image.masked``): blocks, overlays, the grade model,
    the edit undone."""

    blocks: int = 8  # blocks along the overlap's longer side ...
    min_block_px: int = 6  # ... each at least this many px of the work's finest thumbnail
    min_pixels: int = 64  # overlap pixels below which there is nothing to judge
    min_valid: float = 0.6  # share of a block the aligned query must cover for it to count
    shrink_below: float = 0.8  # query shown smaller than this: shrunk before warping
    highpass: float = 0.25  # sigma of the ramps removed before comparing, in blocks
    trim: float = 0.2  # share of a block's pixels left out of its correlation (worst fitting)
    texture_std: float = 6.0  # high-passed grey std (levels) of an informative work block
    agree_zncc: float = 0.6  # block correlation from which a block agrees
    detail_zncc: float = 0.3  # a block's quarter correlating less makes the block differ
    # Translucent overlays: the work shows through at a share of the copy's own contrast ...
    show_through_gain: tuple[float, float] = (0.15, 0.85)
    show_through_zncc: float = 0.3  # ... with the block correlating at least this ...
    show_through_px: float = 0.35  # ... or this share of its textured pixels agreeing
    px_sigma: float = 1.0  # Gaussian window (px) of that pixel-by-pixel correlation
    px_texture: float = 4.0  # local std (grey levels) of a textured work pixel
    px_agree: float = 0.7  # local correlation from which a pixel agrees
    px_min_textured: int = 8  # textured pixels a block needs for a pixel-by-pixel share
    added_std: float = 12.0  # query std (x the copy's contrast) of a block the work lacks ...
    added_min_gain: float = 0.2  # ... with that contrast taken as at least this
    band_rows: float = 0.3  # share of the height from the top or bottom a band may lie in
    band_min_bad: float = 0.5  # share of a band row's informative blocks that differ
    # A band's edge in px: rows from the edge on which fewer of the work's textured px agree
    # than band_px_agree, at least band_min_px of the height; a block it crosses is judged
    # on its part outside the band when at least band_min_left of its rows are left
    band_px_agree: float = 0.3
    band_min_px: float = 0.04
    band_min_left: float = 0.34
    band_query_texture: float = 0.1  # share of a plain work row the query's letters cover
    coloured: float = 12.0  # Cb/Cr magnitude from which a pixel counts as coloured
    min_coloured_px: int = 8  # coloured pixels the grade model needs
    colour_off: float = 30.0  # Cb/Cr distance from the grade model that counts a pixel off
    ridge: float = 0.05  # pull of the grade model towards no change, per coloured pixel ...
    ridge_levels: float = 30.0  # ... in units of this many Cb/Cr levels
    grade_refit_keep: float = 0.75  # share of pixels the grade is refitted on (overlay out)
    gain_field_samples: int = 4000  # pixels the smooth gain/offset field is fitted on ...
    min_field_px: int = 50  # ... at least this many
    field_refit_keep: float = 0.8  # ... refitted on the best-fitting share
    min_field_gain: float = 0.05  # a gain field this low anywhere is no grade (inverted)
    tone_bins: int = 16  # bands of the work's grey levels of the grade's tone curve ...
    tone_min_pixels: int = 12  # ... each needing this many pixels to have a say
    tone_slope: tuple[float, float] = (0.2, 5.0)  # slopes the curve may have between bands
    overlay_grow_grey: float = 40.0  # grey levels from the work of a px an overlay grows over
    overlay_grow_px: int = 3  # ... at most this many px (of the work's finest thumbnail) far


@dataclass(frozen=True)
class MaskedLimits:
    """What the masked judge (``masked``) needs to see to accept."""

    min_blocks: int = 8  # informative blocks in the overlap
    min_agree_share: float = 0.4  # agreeing / informative blocks not under a band
    min_agree_zncc: float = 0.8  # mean correlation of the agreeing blocks
    max_unexplained: float = 0.05  # differing blocks no overlay explains / informative
    max_added: float = 0.1  # blocks textured in the query only (outside bands) / informative
    max_occluded: float = 0.6  # blocks set aside as overlay / informative
    max_colour_off: float = 0.2  # coloured pixels off the fitted grade
    min_overlap: float = 0.25  # share of the work the query shows
    # ... and one inside the other, this share of it: a copy lies on the work (a crop, a
    # zoom) or holds it (a canvas, a photo of a screen); two framings side by side are
    # another photo of the same scene
    min_contained: float = 0.75
    grade_max_turn: float = 15.0  # degrees of hue turn a grade may make
    grade_gain: tuple[float, float] = (0.35, 2.5)  # saturation gain a grade may make


@dataclass(frozen=True)
class MaskedRules:
    """The masked judge: occluded blocks explained by an overlay, colours by one grade."""

    limits: MaskedLimits = field(default_factory=MaskedLimits)
    # A deep zoom shows a small part of the work (a third of each side: 0.11 of it): nearly
    # every block there must agree, and closely (a copy's blocks correlate at 0.94-0.99),
    # little is set aside as an overlay
    zoom: MaskedLimits = field(
        default_factory=lambda: MaskedLimits(
            min_blocks=12,
            min_agree_share=0.85,
            min_agree_zncc=0.93,
            max_unexplained=0.07,
            max_occluded=0.15,
            max_added=0.05,
            min_overlap=0.07,
        )
    )
    # ORB inliers a deep zoom needs: the work's features at the scale the zoom shows them
    # are few (a 0.4 zoom: 9-32), so the blocks carry the evidence
    zoom_min_inliers: int = 8
    agree_weight: float = 0.4  # score: 0.5 * prior + this * agreeing block share


@dataclass(frozen=True)
class HomographyParams:
    """The homography an ORB candidate may be aligned by instead (``homography``)."""

    ransac_px: float = 6.0  # reprojection threshold, px of the work's ORB copy (<= 640 px)
    ransac_iters: int = 2000
    ransac_confidence: float = 0.995
    min_inliers: int = 12  # distinct inliers (both sides) a homography needs
    seed_px: float = 30.0  # px from a similarity's prediction within which votes are kept
    max_keystone: float = 1.8  # ratio of opposite sides' lengths (a 15 degree tilt: ~1.3)
    max_corner_skew: float = 35.0  # degrees a mapped corner may be off a right angle
    scale_range: tuple[float, float] = (0.2, 6.0)  # query -> work area scale
    max_rotation: float = 25.0  # degrees (the mapped frame's top edge)
    min_spread: float = 0.2  # inliers span this share of the work in one direction


@dataclass(frozen=True)
class TableParams:
    compact_ratio: float = 0.25  # rebuild the tables once dead rows exceed this share ...
    compact_min: int = 8  # ... and this many


@dataclass(frozen=True)
class ImageMatchConfig:
    codes: CodeParams = field(default_factory=CodeParams)
    whole: WholeProposal = field(default_factory=WholeProposal)
    crop: CropProposal = field(default_factory=CropProposal)
    boxes: PageBoxParams = field(default_factory=PageBoxParams)
    orb: OrbParams = field(default_factory=OrbParams)
    hashes: HashRules = field(default_factory=HashRules)
    dense: DenseRules = field(default_factory=DenseRules)
    fine: FineRules = field(default_factory=FineRules)
    dense_measure: DenseMeasure = field(default_factory=DenseMeasure)
    fine_measure: FineMeasure = field(default_factory=FineMeasure)
    masked: MaskedRules = field(default_factory=MaskedRules)
    masked_measure: MaskedMeasure = field(default_factory=MaskedMeasure)
    homography: HomographyParams = field(default_factory=HomographyParams)
    tables: TableParams = field(default_factory=TableParams)


DEFAULT = ImageMatchConfig()
