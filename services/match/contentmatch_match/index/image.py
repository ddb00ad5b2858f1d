"""ImageIndex: two-tier image matching over FAISS binary indexes.

Tier 1, global hashes (fast path: resized, re-encoded, recoloured, mirrored, bordered copies)
    Every registered work contributes its canonical pHash (64 bit), PDQ (256 bit) and dHash
    (64 bit) to one ``faiss.IndexBinaryFlat`` each. A query searches with its variants
    (original, mirrored, border-trimmed; PDQ also with its 8 dihedral rotations) using
    ``range_search`` at the loosest radius of the decision rules (dHash: a k-NN search when
    those find nothing, see CAND_DHASH; then a k-NN search of a vertical dHash the index
    derives from the thumbnails, for horizontal stripes: see CAND_DHASH_V; last, a k-NN
    search of the crop ladder, codes of the work's centred crops, for zooms: see
    CROP_RUNGS; and for a query that looks like a page (a screenshot), the boxes of the
    pictures on it, looked up among whole-picture codes: see ``image_boxes``), then the best
    candidates are verified by the dense
    check of ``image_verify`` (the query's thumbnail, aligned as the variant says, must
    reproduce the work's thumbnail in structure, grey levels and colour; two near-flat
    pictures in their faint detail), and what it accepts is looked at again at 128 px by the
    fine check of ``image_fine`` (template siblings differ in a small block of pixels).
    Fingerprints without thumbnails (older payloads) fall back to ORB agreement or to all
    three hashes close. See the thresholds below for why hashes alone are not enough.

    Why IndexBinaryFlat: it is *exact* (a near duplicate at distance 14 is always returned,
    an approximate index that misses it is a false negative) and it is fast enough: a brute
    force popcount scan of 1,000,000 codes takes ~0.5 ms for 64-bit and ~1 ms for 256-bit codes
    on this machine (see ``bench/image_bench.py``; the dHash k-NN scan is exact too).
    IndexBinaryMultiHash is exact only with enough bit flips (nflip >= radius / nhash) and
    was 20x *slower* at the radii we need (measured ~20 ms with 4x16-bit tables, nflip=3);
    IndexBinaryHash/IVF/HNSW are approximate.

Tier 2, ORB local features (crops, rotations, captions, canvases)
    ORB descriptors (32 bytes) of all works live in one ``IndexBinaryFlat``; a query's
    descriptors are range-searched (Hamming <= ``ORB_DESC_RADIUS``), votes are counted per work
    (distinct query keypoints), and the best-voted works are verified geometrically with a
    RANSAC similarity transform (rotation + uniform scale + translation, ``cv2.
    estimateAffinePartial2D``). Only geometrically consistent inliers count, which is what
    keeps "naive ORB" from matching unrelated images, and then the transform is checked
    densely (as for tier 1, through the transform): inliers alone confirm clip art that merely
    shares a motif. The matched region in the work is the query frame mapped through the
    transform.

Ids, removal and replacement
    FAISS positions are "slots"; the side table maps slot -> work_id and work_id -> slot.
    ``remove`` marks the slot dead (tombstone: O(1), results from dead slots are filtered) and
    the FAISS indexes are rebuilt from the live rows once dead rows exceed ``COMPACT_RATIO`` of
    all rows. IndexBinaryIDMap2.remove_ids on a flat index is O(N) per call anyway (it shifts the
    code array) and costs a hash map of ids; tombstones + amortised compaction are cheaper for
    the registry's add-mostly workload. ``add`` of a known work_id = remove + add (replace).

Thread-safety: one ``threading.RLock`` guards all state (adds from the registry follower,
searches from the upload matcher).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import faiss
import numpy as np

from contentmatch_match.index.base import IndexHit
from contentmatch_match.index.image_boxes import margin_box, page_boxes, ring
from contentmatch_match.index.image_fine import FineCheck, fine_check
from contentmatch_match.index.image_verify import (
    MIN_CHROMA,
    DenseCheck,
    Thumb,
    dense_check,
    scale_transform,
    work_thumbnail,
)
from contentmatch_shared.orb_payload import decode_orb
from contentmatch_shared.thumb_payload import decode_chroma, decode_thumb

# ---------------------------------------------------------------------------------------------
# Thresholds, all in one place.
#
# Calibrated on tests/fixtures/images.py (generated works and distractors), then on the real
# corpora of bench/image_bench.py (1,000 works, 2,000 other-collection distractors, mostly
# clip art; see the README's benchmark section). On clip art the global hashes alone cannot
# separate copies from unrelated drawings: a white page with a few strokes has a nearly fixed
# pHash (15 % of clip-art distractors lie within pHash <= 10 of some work; PDQ <= 31 with its
# 8 dihedral variants still gives 1 %), while genuine benign copies of clip art reach pHash 24
# (WebP) and PDQ 100+ (thin lines lost by resizing). Neither can ORB inliers alone: sibling
# drawings (flags sharing a canton, signs sharing a frame, an icon theme's folder) give 20-300
# consistent inliers.
# Hence global hashes only *propose* candidates (pHash <= 12 or PDQ <= 70, any variant: 99 %+
# of benign copies) and ORB only proposes a transform (>= 8 inliers); the dense check of
# image_verify decides: the aligned query must cover DENSE_MIN_OVERLAP of the work, agree in
# structure on DENSE_ACCEPT of the textured pixels (an edge band discounted; DENSE_MIN_AGREE
# without), differ in grey level on at most DENSE_MAX_DIFF of them and, when both have colour,
# keep its colours (chroma cosine >= DENSE_MIN_COLOUR; at most DENSE_MAX_COLOUR_MOVED of the
# coloured pixels moved beyond a global saturation gain; no colour on a grey work). Two
# near-flat pictures (gradient wallpapers) have no texture to agree on: the faint detail over
# their gradients must correlate (FLAT_MIN_CORR); a plain gradient has none and matches nothing.
# Without thumbnails (fingerprints from before the signal existed) the older rules apply:
#   * ORB confirms geometrically (>= 16 RANSAC inliers of a similarity transform), or
#   * all three hashes are close (pHash <= 4, PDQ <= 31, dHash <= 10), or
#   * the hash rules of the first calibration hold and ORB does not contradict them (ORB on
#     both sides finds < GLOBAL_ORB_REFUTE inliers = refuted).
# ---------------------------------------------------------------------------------------------
PHASH_ALONE = 8  # score scale of a hash-only match (pHash)
PDQ_ALONE = 31  # score scale of a hash-only match (PDQ, Meta HMA's threshold)
PDQ_MIN_QUALITY = 30  # below this PDQ quality (flat images) dihedral PDQ is not trusted
ROT_PDQ = 31  # PDQ rotated 90/180/270 degrees: only the strict threshold
PDQ_ROTATIONS = False  # search those 6 dihedral variants too (+6 PDQ scans: ~6 ms at 1M works)
ORB_KNN = 5  # nearest work descriptors looked up per query descriptor
ORB_DESC_RADIUS = 56  # ... kept when within this Hamming distance (of 256 bits)
ORB_MIN_VOTES = 8  # distinct query keypoints voting for a work before it is verified
ORB_VERIFY_TOP = 8  # at most this many works are verified with RANSAC per query
ORB_RANSAC_PX = 6.0  # reprojection threshold, pixels of the work's ORB copy (<= 640 px)
ORB_MIN_INLIERS = 16  # inliers (distinct work keypoints) needed for a geometric match
ORB_SCALE_RANGE = (0.2, 6.0)  # plausible query->work scale of the similarity transform
ORB_MAX_ROTATION = 25.0  # degrees; 90/180/270 degree turns are the PDQ dihedral's job
ORB_MIN_SPREAD = 0.2  # inliers must span >= 20 % of the work's width and of its height
# (shared text, a logo or one repeated glyph gives compact clusters of consistent inliers)
CAND_PHASH = 12  # global candidates: pHash <= 12 or PDQ <= 70 (any variant) are verified ...
CAND_PDQ = 70
GLOBAL_VERIFY_TOP = 8  # ... the best 8 of them by pHash + PDQ / 4 ...
GLOBAL_ORB_INLIERS = 16  # ... with ORB: this many inliers of a similarity transform (as tier 2)
GLOBAL_ORB_REFUTE = 8  # fewer inliers than this with ORB on both sides: hashes are overruled
# Symmetric patterns and smooth gradients put pHash/PDQ coefficients near their median,
# where re-encoding flips them (openclipart's pattern-x-hatch-1: pHash 26 bits after JPEG q75)
# while dHash moves by 2-10 bits; so dHash proposes candidates too (k-NN search) when the
# pHash/PDQ candidates yield no match:
CAND_DHASH = 10  # dHash distance of a proposed candidate ...
DHASH_KNN = 8  # ... among the nearest 8 works (a range search drowns in blank pages) ...
DHASH_VERIFY_TOP = 2  # ... of which the 2 nearest are verified
DHASH_MIN_BITS = 8  # a query dHash with fewer set (or unset) bits is a blank page: not used
# dHash compares neighbours along rows, so horizontal stripes (Colombia, Estonia, Catalonia)
# leave it blank and put pHash/PDQ coefficients at their median (28 bits after blur or WebP).
# The same difference hash taken down the columns ("dhash_v", from the 128 px grey thumbnail
# both sides carry) proposes candidates last, when nothing else did; only the dense check
# can accept them. Blur and WebP copies stay within 4 bits (99.6 %); crops and rotations
# spread out to 10 and beyond, where template siblings start (two speech bubbles with their
# tails left and right: 8), so the radius stays at what benign copies need.
DHASH_V_TIE = 4.0  # grey levels two cells must differ by to set a vertical dHash bit
CAND_DHASH_V = 6  # vertical dHash distance of a proposed candidate, among the DHASH_KNN nearest
# A centre crop (a zoom, a platform's re-framing) shows a part of the work that no global hash
# of the whole describes, and flags or icons have too few corners for ORB to vote with. So the
# index also keeps, for each work with a thumbnail, a crop ladder: the crop code (rises and
# falls of the grey level along rows and down columns, 256 bits, ties in flat areas left 0) of
# centred crops keeping CROP_RUNGS of each side, in steps of 2^(1/5) (a crop between two rungs
# is at most 7 % off in scale). Last of all, when nothing else matched, the query's own code
# looks up the nearest rungs (k-NN: crops of blank pages crowd any radius); the candidates are
# ranked by a tiny picture with colour (three-striped flags share one code), the scale is
# settled between rungs at 48 px, and only the dense and fine checks, aligned as that crop
# says, accept. On 250 centre crops of 60 % (random split) the right work's code is among the
# 8 nearest for every one, and so it is for crops simulated midway between two rungs.
CROP_RUNGS = (0.5, 0.574, 0.66, 0.758)  # share of each side a rung keeps, centred
CROP_BITS = 256  # rises and falls along rows and down columns (crop_code)
CROP_KNN = 32  # nearest crop codes looked up (rows: several rungs of a work are often near) ...
CAND_CROP = 32  # ... kept within this distance (of 256 bits) ...
CROP_VERIFY_TOP = 3  # ... of which the 3 works nearest by their tiny picture are verified
TINY = 12  # side of that tiny picture (grey + chroma) ...
TINY_CHROMA = 24.0  # ... with chroma in units of this many Cb/Cr levels
KEEP_SIDE = 48  # px at which the crop's scale is settled between rungs (_closest_keep) ...
# ... never beyond the ladder's top by more than one step: a crop that keeps more is nearly
# the whole picture, which the global hashes and ORB find (crop_10: 0.96-0.97 without the
# ladder), and where a scaled "crop" only lets two flags of one layout pass for each other.
CROP_MAX_KEEP = 0.87
# A query whose frame is plain all round (PLAIN_RING of its outer FRAME_PX rows and columns
# within PLAIN_GREY of their median) shows a whole object on its background, not a cut-out
# of a larger picture: on clip art, a diamond matched the centre of an ace of diamonds and
# nearly blank map symbols the middle of another. The ladder does not propose for those.
FRAME_PX = 3
PLAIN_GREY = 10.0
PLAIN_RING = 0.99
BOX_MIN_AGREE = 0.8  # agreement of a picture found as a box on a page (image_boxes)
STRICT_PHASH = 4  # without a geometric check (mirror, no keypoints): all three hashes close
STRICT_PDQ = 31
STRICT_DHASH = 10
DENSE_ACCEPT = 0.8  # agreeing share of textured pixels (worst edge band discounted) ...
DENSE_MIN_AGREE = 0.5  # ... and of the work's textured pixels without the discount
DENSE_MAX_DIFF = 0.03  # textured pixels whose grey level differs (the band discounted)
DENSE_MIN_COLOUR = 0.8  # chroma cosine when both sides have colour
DENSE_MAX_DIFF_PDQ = 0.08  # ... and the limits when PDQ is within HMA's threshold (<= 31)
DENSE_MIN_COLOUR_PDQ = 0.7
# Colours pixel by pixel (both limits hold with PDQ close too: PDQ is blind to colour). Every
# benchmark copy moves at most 20 % of its coloured pixels (a 15 % border's JPEG bleed);
# Ireland on France moves 88 %, a lemon on a lime 31 %.
DENSE_MAX_COLOUR_MOVED = 0.25
# ... and hues turned round in one place (the densest 8 x 8 px window at 64 px): benchmark
# copies at most 0.031 (both splits); australia_queensland's blue cross where
# new_south_wales has its red one, 0.25.
DENSE_MAX_COLOUR_REVERSED = 0.15
# A copy of a grey work stays grey: query mean chroma above this on a work below MIN_CHROMA
# (every benchmark copy of a grey work: <= 7.6; Savoie's red cross on Cornwall's black: 65).
COLOUR_ADDED = 18.0
# ... or strong colour (CHROMA_MOVED) on more than this share of the compared pixels where
# the work has none: a red surfboard on a white page keeps the mean low. Copies of grey works
# (907 in the random split, all transforms): at most 0.56 %.
COLOUR_ADDED_SHARE = 0.02
DENSE_MIN_OVERLAP = 0.25  # share of the work the query must show (a 60 % crop shows 0.36)
# ... and the query must lie on the work (a crop) or hold all of it (a canvas): at least this
# share of one inside the other (measured >= 0.82 for every copy in the benchmark; math glyphs
# aligned on a shared "x", side by side, reach 0.46-0.57)
DENSE_MIN_CONTAINED = 0.75
ORB_MIN_INLIERS_DENSE = 8  # ORB inliers that suffice when the dense check confirms
FLAT_MIN_CORR = 0.85  # both flat (gradient wallpapers): their faint detail correlates this well
# Template siblings (one sign template, one moon set) pass the 64 px dense check; image_fine
# looks again at 128 px, where their differing symbol is a block of pixels beyond DIFF_GREY:
FINE_MAX_DIFF = 0.015  # share of the overlap's pixels that may still differ at 128 px
# ... and a copy's differing pixels are scattered (resampling, JPEG), a sibling's gather on the
# symbol that differs: the densest 8 x 8 px window may hold this share of differing pixels.
# Counted with 2 px of slack. Benchmark copies: 99.9 % at or under 0.14, all at or under 0.25;
# Montserrat's badge for the Virgin Islands' 0.48, Rwanda's sun for Mauritius' stripes 1.0.
FINE_MAX_CLUSTER = 0.28
# ... and a symbol of another structure drawn in the same tones (a dishwasher's dark rack for a
# washing machine's dark drum, another coat of arms): the densest 12 x 12 px window may hold
# this share of such pixels. Benchmark copies: 99.9 % at or under 0.12.
FINE_MAX_STRUCTURE = 0.15
COMPACT_RATIO = 0.25  # rebuild FAISS once tombstones exceed this share of rows

_PDQ_MIRROR_INDEX = 5  # in pdqhash.compute_dihedral order, 5 = left-right mirror (measured)
_PDQ_ROT_INDICES = (1, 2, 3, 4, 6, 7)


def _hex_codes(h: str, nbytes: int) -> np.ndarray:
    b = bytes.fromhex(h)
    if len(b) != nbytes:
        raise ValueError(f"expected {nbytes * 8}-bit hash, got {len(b) * 8}")
    return np.frombuffer(b, dtype=np.uint8)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance between uint8 arrays broadcastable to (n, nbytes)."""
    return _POPCOUNT[np.bitwise_xor(a, b)].sum(axis=-1, dtype=np.int32)


def _get(fp: object, name: str):
    if isinstance(fp, dict):
        return fp.get(name)
    return getattr(fp, name, None)


@dataclass
class _Query:
    groups: list[tuple[str, np.ndarray, np.ndarray | None, np.ndarray]]  # name, phash, dhash, pdq
    pdq_rot: list[np.ndarray]
    quality: int
    orb: dict | None
    thumb: Thumb | None
    trim_box: tuple[float, float, float, float] | None


def _parse_query(fp: object) -> _Query:
    hashes = _get(fp, "hashes") or {}
    extra = _get(fp, "extra") or {}
    variants = extra.get("variants") or {}
    groups = []
    ph, dh, pq = hashes.get("phash"), hashes.get("dhash"), hashes.get("pdq")
    if ph and pq:
        groups.append(
            ("", _hex_codes(ph, 8), _hex_codes(dh, 8) if dh else None, _hex_codes(pq, 32))
        )
    dihedral = [h for h in str(variants.get("pdq_dihedral") or "").split(",") if h]
    if variants.get("phash_mirror") and len(dihedral) == 8:
        dm = variants.get("dhash_mirror")
        groups.append(
            (
                "mirror",
                _hex_codes(variants["phash_mirror"], 8),
                _hex_codes(dm, 8) if dm else None,
                _hex_codes(dihedral[_PDQ_MIRROR_INDEX], 32),
            )
        )
    if variants.get("phash_trim") and variants.get("pdq_trim"):
        dt = variants.get("dhash_trim")
        groups.append(
            (
                "trim",
                _hex_codes(variants["phash_trim"], 8),
                _hex_codes(dt, 8) if dt else None,
                _hex_codes(variants["pdq_trim"], 32),
            )
        )
    rot = [_hex_codes(dihedral[i], 32) for i in _PDQ_ROT_INDICES] if len(dihedral) == 8 else []
    box = variants.get("trim_box")
    return _Query(
        groups,
        rot,
        int(extra.get("pdq_quality", 100) or 0),
        extra.get("orb"),
        _thumb_or_none(extra.get("thumb")),
        tuple(float(v) for v in box) if box and len(box) == 4 else None,
    )


def vertical_dhash(grey: np.ndarray) -> np.ndarray:
    """64-bit difference hash down the columns: 8 columns x 8 row pairs of a 8 x 9 area
    resampling, bit set where the lower cell is brighter by more than DHASH_V_TIE grey
    levels (inside a flat stripe the two cells tie, and noise would pick the bit).
    8 bytes, as the FAISS codes."""
    small = cv2.resize(grey.astype(np.float32), (8, 9), interpolation=cv2.INTER_AREA)
    return np.packbits((small[1:] > small[:-1] + DHASH_V_TIE).ravel())


def crop_code(grey: np.ndarray) -> np.ndarray:
    """32 bytes: where the grey level rises and where it falls by more than DHASH_V_TIE
    between neighbouring cells, along the rows (9 x 8 cells) and down the columns (8 x 9).
    Falls get bits of their own: a plain difference hash cannot tell a fall from a tie, and
    the stripes of a flag are mostly that."""
    g = grey.astype(np.float32)
    rows = cv2.resize(g, (9, 8), interpolation=cv2.INTER_AREA)
    cols = cv2.resize(g, (8, 9), interpolation=cv2.INTER_AREA)
    dr, dc = rows[:, 1:] - rows[:, :-1], cols[1:] - cols[:-1]
    bits = [dr > DHASH_V_TIE, dr < -DHASH_V_TIE, dc > DHASH_V_TIE, dc < -DHASH_V_TIE]
    return np.packbits(np.concatenate([b.ravel() for b in bits]))


def tiny(t: Thumb) -> np.ndarray:
    """TINY x TINY grey levels (zero mean, unit spread: a crop may be re-encoded or
    brightened) and Cb/Cr planes scaled to grey-level units, flattened: the cheap look that
    ranks crop candidates whose codes tie (three-striped flags share one code)."""
    g = _zscored(cv2.resize(t.grey.astype(np.float32), (TINY, TINY), interpolation=cv2.INTER_AREA))
    if t.chroma is None or not t.chroma.size:
        c = np.zeros((TINY, TINY, 2), np.float32)
    else:
        c = cv2.resize(t.chroma.astype(np.float32), (TINY, TINY), interpolation=cv2.INTER_AREA)
        c = (c - 128.0) / TINY_CHROMA
    return np.concatenate([g.ravel(), c.ravel()])


def centre_crop(grey: np.ndarray, keep: float) -> np.ndarray:
    """The centred part of ``grey`` that keeps ``keep`` of each side."""
    h, w = grey.shape
    x0, y0 = round(w * (1.0 - keep) / 2), round(h * (1.0 - keep) / 2)
    return grey[y0 : max(y0 + 2, h - y0), x0 : max(x0 + 2, w - x0)]


def whole_codes(thumb: Thumb) -> tuple[np.ndarray, np.ndarray]:
    """The crop codes of the whole thumbnail and, when it has a uniform margin, of the part
    inside it; with the (x, y, w, h) box each stands for."""
    boxes = [(0.0, 0.0, 1.0, 1.0)]
    inner = margin_box(thumb.grey)
    if inner is not None:
        boxes.append(inner)
    codes = np.stack([crop_code(thumb.cropped(b).grey) for b in boxes])
    return codes, np.array(boxes, np.float32)


def crop_ladder(grey: np.ndarray) -> np.ndarray:
    """len(CROP_RUNGS) x 32 bytes: the crop code of each rung's centred crop."""
    return np.stack([crop_code(centre_crop(grey, r)) for r in CROP_RUNGS])


def _rung_box(row: int) -> tuple[float, float, float, float]:
    """The centred box of the rung a crop-ladder row holds (every work adds a full ladder)."""
    keep = CROP_RUNGS[row % len(CROP_RUNGS)]
    lo = (1.0 - keep) / 2
    return (lo, lo, keep, keep)


def _onto(box: tuple[float, float, float, float], query: Thumb, work: Thumb) -> np.ndarray:
    """2x3: the whole ``query`` thumbnail onto ``box`` (normalised x, y, w, h) of ``work``'s."""
    (qh, qw), (wh, ww) = query.grey.shape, work.grey.shape
    x, y, bw, bh = box
    return np.array([[bw * ww / qw, 0.0, x * ww], [0.0, bh * wh / qh, y * wh]])


def _dense_hit(verdict: _Verdict, ev: dict[str, object], d: int, signal: str) -> tuple:
    """(score, signal, distance, evidence) of a fallback proposal the dense check accepted."""
    ev.update(verdict.evidence())
    ev["verified"] = "dense"
    return (_score_dense(verdict.dense, _score_global(d, CAND_CROP)), signal, d, ev)


def _closest_keep(work: Thumb, query: Thumb, keep: float) -> float:
    """The centred crop of ``work``, within a rung's step of ``keep``, that looks most like
    ``query`` at KEEP_SIDE px: a crop between two rungs starts the dense check aligned within
    ~1.5 % of its scale (ECC alone does not pull a striped flag's 7 % back)."""
    src = (work.fine if work.fine is not None else work.grey).astype(np.float32)
    q = _zscored(
        cv2.resize(
            query.grey.astype(np.float32), (KEEP_SIDE, KEEP_SIDE), interpolation=cv2.INTER_AREA
        )
    )
    best, best_look = keep, math.inf
    for j in range(-8, 9):
        k = min(keep * 2.0 ** (j / 40.0), CROP_MAX_KEEP)
        # The whole work scaled so that the crop is KEEP_SIDE px: sub-pixel crops of a 64 px
        # thumbnail would move in whole-pixel (3 %) steps.
        side = round(KEEP_SIDE / k)
        scaled = cv2.resize(src, (side, side), interpolation=cv2.INTER_AREA)
        o = (side - KEEP_SIDE) // 2
        look = float(np.abs(_zscored(scaled[o : o + KEEP_SIDE, o : o + KEEP_SIDE]) - q).mean())
        if look < best_look:
            best, best_look = KEEP_SIDE / side, look
    return best


def _plain_frame(grey: np.ndarray) -> bool:
    """The outer FRAME_PX rows and columns are (almost all) one grey level."""
    v = grey[ring(grey.shape, FRAME_PX)].astype(np.float32)
    return float((np.abs(v - np.median(v)) <= PLAIN_GREY).mean()) >= PLAIN_RING


def _zscored(g: np.ndarray) -> np.ndarray:
    return (g - g.mean()) / max(float(g.std()), 8.0)


def _rows_by_slot(
    fx: faiss.IndexBinaryFlat, slot_of: _Grow
) -> tuple[np.ndarray, dict[int, list[int]]]:
    """All codes of a crop-code index, and slot -> its row numbers (for a rebuild)."""
    codes = (
        fx.reconstruct_n(0, fx.ntotal).reshape(-1, CROP_BITS // 8)
        if fx.ntotal
        else np.zeros((0, CROP_BITS // 8), np.uint8)
    )
    rows: dict[int, list[int]] = {}
    for row, slot in enumerate(slot_of.view[:, 0].tolist()):
        rows.setdefault(slot, []).append(row)
    return codes, rows


def _thumb_or_none(payload: object) -> Thumb | None:
    """A fingerprint without a (valid) thumbnail is still indexed: dense checks are skipped."""
    if not isinstance(payload, dict):
        return None
    try:
        return Thumb(decode_thumb(payload), decode_chroma(payload))
    except (KeyError, TypeError, ValueError):
        return None


class _Grow:
    """A growable 2-D numpy array (amortised doubling)."""

    def __init__(self, width: int, dtype) -> None:
        self.a = np.zeros((64, width), dtype=dtype)
        self.n = 0

    def append(self, rows: np.ndarray) -> int:
        start = self.n
        need = self.n + len(rows)
        if need > len(self.a):
            cap = max(need, 2 * len(self.a))
            b = np.zeros((cap, self.a.shape[1]), dtype=self.a.dtype)
            b[: self.n] = self.a[: self.n]
            self.a = b
        self.a[start:need] = rows
        self.n = need
        return start

    @property
    def view(self) -> np.ndarray:
        return self.a[: self.n]

    def nbytes(self) -> int:
        return int(self.a.nbytes)


def _score_global(d: int, thr: int) -> float:
    return float(max(0.5, min(1.0, 1.0 - d / (2.0 * max(thr, 1)))))


class ImageIndex:
    """MediaIndex for images: global hashes (exact FAISS flat) + ORB/RANSAC second tier."""

    def __init__(self, use_orb: bool = True, use_dense: bool = True) -> None:
        self.use_orb = use_orb
        self.use_dense = use_dense  # False: hash/ORB rules only (no thumbnails kept)
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._phash = _Grow(8, np.uint8)
        self._dhash = _Grow(8, np.uint8)
        self._pdq = _Grow(32, np.uint8)
        self._has_dhash = _Grow(1, np.bool_)
        self._quality = _Grow(1, np.int16)  # the work's PDQ quality (0..100)
        self._alive = _Grow(1, np.bool_)
        self._slot_work: list[str] = []
        self._slot_orb: list[tuple[int, int, int, int] | None] = []  # start, n, w, h
        self._slot_thumb: list[Thumb | None] = []  # grey <= WORK_THUMB_SIDE px + chroma
        self._slot_of: dict[str, int] = {}
        self._fx_phash = faiss.IndexBinaryFlat(64)
        self._fx_pdq = faiss.IndexBinaryFlat(256)
        self._fx_dhash = faiss.IndexBinaryFlat(64)  # zeros for works without dHash (filtered)
        # zeros for works without a thumbnail: filtered, only works with one can be verified
        self._dhash_v = _Grow(8, np.uint8)
        self._fx_dhash_v = faiss.IndexBinaryFlat(64)
        # len(CROP_RUNGS) rows per work with a thumbnail (row -> slot in _crop_slot)
        self._fx_crop = faiss.IndexBinaryFlat(CROP_BITS)
        self._crop_slot = _Grow(1, np.int32)
        # the crop code of the whole thumbnail, and of the part inside a uniform margin when
        # there is one: row -> slot, and the box of the work (x, y, w, h) the row stands for
        self._fx_whole = faiss.IndexBinaryFlat(CROP_BITS)
        self._whole_slot = _Grow(1, np.int32)
        self._whole_box = _Grow(4, np.float32)
        self._fx_orb = faiss.IndexBinaryFlat(256)
        self._orb_slot = _Grow(1, np.int32)
        self._orb_kp = _Grow(2, np.float32)
        self._dead = 0

    # -- MediaIndex -------------------------------------------------------------------------

    def add(self, work_id: str, fingerprint: object) -> None:
        hashes = _get(fingerprint, "hashes") or {}
        extra = _get(fingerprint, "extra") or {}
        ph = _hex_codes(hashes["phash"], 8)
        pq = _hex_codes(hashes["pdq"], 32)
        dh = hashes.get("dhash")
        dh_codes = _hex_codes(dh, 8) if dh else np.zeros(8, np.uint8)
        quality = int(extra.get("pdq_quality", 100) or 0)
        orb = extra.get("orb") if self.use_orb else None
        decoded = decode_orb(orb) if orb else None
        thumb = _thumb_or_none(extra.get("thumb")) if self.use_dense else None
        small = work_thumbnail(thumb) if thumb is not None else None
        dv = vertical_dhash(thumb.grey) if thumb is not None else np.zeros(8, np.uint8)
        ladder = crop_ladder(thumb.grey) if thumb is not None else None
        wholes = whole_codes(thumb) if thumb is not None else None
        with self._lock:
            if work_id in self._slot_of:
                self._remove_locked(work_id)
            slot = len(self._slot_work)
            self._phash.append(ph[None])
            self._dhash.append(dh_codes[None])
            self._pdq.append(pq[None])
            self._has_dhash.append(np.array([[bool(dh)]]))
            self._quality.append(np.array([[quality]], np.int16))
            self._fx_phash.add(ph[None])
            self._fx_pdq.add(pq[None])
            self._fx_dhash.add(dh_codes[None])
            self._dhash_v.append(dv[None])
            self._fx_dhash_v.add(dv[None])
            self._alive.append(np.ones((1, 1), np.bool_))
            self._slot_work.append(work_id)
            self._slot_of[work_id] = slot
            self._slot_thumb.append(small)
            if ladder is not None:
                self._add_crops(slot, ladder)
            if wholes is not None:
                self._add_wholes(slot, *wholes)
            if decoded is not None and len(decoded[0]):
                desc, kp, w, h = decoded
                start = self._orb_slot.append(np.full((len(desc), 1), slot, np.int32))
                self._orb_kp.append(kp)
                self._fx_orb.add(np.ascontiguousarray(desc))
                self._slot_orb.append((start, len(desc), w, h))
            else:
                self._slot_orb.append(None)

    def add_hash_codes(
        self,
        work_ids: list[str],
        phash: np.ndarray,
        dhash: np.ndarray,
        pdq: np.ndarray,
        dhash_v: np.ndarray | None = None,
        crops: np.ndarray | None = None,
        wholes: np.ndarray | None = None,
    ) -> None:
        """Bulk-add works known by their global hash codes only (uint8 rows of 8, 8, 32 and
        optionally 8 bytes, optionally n x len(CROP_RUNGS) x 32 crop codes and n x 32 whole-picture
        codes; no ORB, no
        thumbnail, so nothing they propose can be verified): the million-work scale benchmark
        builds its index this way in seconds, and its scans cost what real codes would. New
        ids only."""
        n = len(work_ids)
        if dhash_v is None:
            dhash_v = np.zeros((n, 8), np.uint8)
        if not (len(phash) == len(dhash) == len(pdq) == len(dhash_v) == n):
            raise ValueError("one row of each code per work id")
        if crops is not None and crops.shape != (n, len(CROP_RUNGS), CROP_BITS // 8):
            raise ValueError("one crop ladder per work id")
        if wholes is not None and wholes.shape != (n, CROP_BITS // 8):
            raise ValueError("one whole-picture code per work id")
        with self._lock:
            if any(w in self._slot_of for w in work_ids):
                raise ValueError("add_hash_codes only adds new work ids")
            base = len(self._slot_work)
            for grow, codes in ((self._phash, phash), (self._dhash, dhash), (self._pdq, pdq)):
                grow.append(np.ascontiguousarray(codes, dtype=np.uint8))
            self._has_dhash.append(np.ones((n, 1), np.bool_))
            self._quality.append(np.full((n, 1), 100, np.int16))
            self._alive.append(np.ones((n, 1), np.bool_))
            self._fx_phash.add(np.ascontiguousarray(phash, dtype=np.uint8))
            self._fx_pdq.add(np.ascontiguousarray(pdq, dtype=np.uint8))
            self._fx_dhash.add(np.ascontiguousarray(dhash, dtype=np.uint8))
            self._dhash_v.append(np.ascontiguousarray(dhash_v, dtype=np.uint8))
            self._fx_dhash_v.add(np.ascontiguousarray(dhash_v, dtype=np.uint8))
            self._slot_work.extend(work_ids)
            self._slot_of.update((w, base + j) for j, w in enumerate(work_ids))
            self._slot_orb.extend([None] * n)
            self._slot_thumb.extend([None] * n)
            if crops is not None:
                slots = np.repeat(np.arange(base, base + n, dtype=np.int32), len(CROP_RUNGS))
                self._crop_slot.append(slots[:, None])
                rows = crops.reshape(-1, CROP_BITS // 8)
                self._fx_crop.add(np.ascontiguousarray(rows, dtype=np.uint8))
            if wholes is not None:
                self._whole_slot.append(np.arange(base, base + n, dtype=np.int32)[:, None])
                self._whole_box.append(np.tile(np.array([0, 0, 1, 1], np.float32), (n, 1)))
                self._fx_whole.add(np.ascontiguousarray(wholes, dtype=np.uint8))

    def _add_wholes(self, slot: int, codes: np.ndarray, boxes: np.ndarray) -> None:
        self._whole_slot.append(np.full((len(codes), 1), slot, np.int32))
        self._whole_box.append(boxes)
        self._fx_whole.add(np.ascontiguousarray(codes))

    def _add_crops(self, slot: int, ladder: np.ndarray) -> None:
        self._crop_slot.append(np.full((len(ladder), 1), slot, np.int32))
        self._fx_crop.add(np.ascontiguousarray(ladder))

    def remove(self, work_id: str) -> None:
        with self._lock:
            if work_id in self._slot_of:
                self._remove_locked(work_id)
                if self._dead > COMPACT_RATIO * len(self._slot_work) and self._dead >= 8:
                    self._compact_locked()

    def __len__(self) -> int:
        with self._lock:
            return len(self._slot_of)

    def memory_bytes(self) -> int:
        with self._lock:
            n = (
                self._phash.nbytes()
                + self._dhash.nbytes()
                + self._pdq.nbytes()
                + self._has_dhash.nbytes()
                + self._quality.nbytes()
                + self._orb_slot.nbytes()
                + self._orb_kp.nbytes()
                + self._fx_phash.ntotal * 8
                + self._fx_pdq.ntotal * 32
                + self._fx_dhash.ntotal * 8
                + self._dhash_v.nbytes()
                + self._fx_dhash_v.ntotal * 8
                + self._fx_crop.ntotal * (CROP_BITS // 8)
                + self._crop_slot.nbytes()
                + self._fx_whole.ntotal * (CROP_BITS // 8)
                + self._whole_slot.nbytes()
                + self._whole_box.nbytes()
                + self._fx_orb.ntotal * 32
            )
            # side table: work id strings, dict and list entries (approximate)
            n += sum(len(w) + 49 for w in self._slot_work) + 104 * len(self._slot_of)
            n += 8 * 4 * len(self._slot_orb) + self._alive.nbytes()
            n += sum(t.nbytes + 200 for t in self._slot_thumb if t is not None)
            return int(n)

    def search(
        self, fingerprint: object, limit: int = 10, *, second_tier: str = "auto"
    ) -> list[IndexHit]:
        """Matches best first. ``second_tier``: "auto" (ORB only when tier 1 finds nothing),
        "always" or "never"."""
        q = _parse_query(fingerprint)
        with self._lock:
            if not self._slot_of:
                return []
            hits = self._search_global(q)
            if (
                self.use_orb
                and q.orb
                and second_tier != "never"
                and (not hits or second_tier == "always")
            ):
                for h in self._search_orb(q.orb, q.thumb):
                    prev = hits.get(h.work_id)
                    if prev is None:
                        hits[h.work_id] = h
                    else:
                        prev.evidence.update(h.evidence)
        out = sorted(hits.values(), key=lambda h: (-h.score, h.work_id))
        return out[:limit]

    # -- internals --------------------------------------------------------------------------

    def _remove_locked(self, work_id: str) -> None:
        slot = self._slot_of.pop(work_id)
        self._alive.a[slot, 0] = False
        self._dead += 1

    def _compact_locked(self) -> None:
        live = np.flatnonzero(self._alive.view[:, 0])
        phash, dhash, pdq = self._phash.view[live], self._dhash.view[live], self._pdq.view[live]
        has_d = self._has_dhash.view[live]
        dv = self._dhash_v.view[live]
        qual = self._quality.view[live]
        orb_all = (
            self._fx_orb.reconstruct_n(0, self._fx_orb.ntotal).reshape(-1, 32)
            if (self._fx_orb.ntotal)
            else np.zeros((0, 32), np.uint8)
        )
        kp_all = self._orb_kp.view
        crop_all, crop_rows = _rows_by_slot(self._fx_crop, self._crop_slot)
        whole_all, whole_rows = _rows_by_slot(self._fx_whole, self._whole_slot)
        whole_boxes = self._whole_box.view.copy()
        items = [
            (
                self._slot_work[s],
                self._slot_orb[s],
                self._slot_thumb[s],
                crop_rows.get(int(s)),
                whole_rows.get(int(s)),
            )
            for s in live
        ]
        self._reset()
        for i, (work_id, orb, thumb, rows, wrows) in enumerate(items):
            self._phash.append(phash[i : i + 1])
            self._dhash.append(dhash[i : i + 1])
            self._pdq.append(pdq[i : i + 1])
            self._has_dhash.append(has_d[i : i + 1])
            self._dhash_v.append(dv[i : i + 1])
            self._quality.append(qual[i : i + 1])
            self._alive.append(np.ones((1, 1), np.bool_))
            self._slot_work.append(work_id)
            self._slot_of[work_id] = i
            self._slot_thumb.append(thumb)
            if rows:
                self._add_crops(i, crop_all[rows])
            if wrows:
                self._add_wholes(i, whole_all[wrows], whole_boxes[wrows])
            if orb is not None:
                start, n, w, h = orb
                new_start = self._orb_slot.append(np.full((n, 1), i, np.int32))
                self._orb_kp.append(kp_all[start : start + n])
                self._fx_orb.add(np.ascontiguousarray(orb_all[start : start + n]))
                self._slot_orb.append((new_start, n, w, h))
            else:
                self._slot_orb.append(None)
        if len(phash):
            self._fx_phash.add(np.ascontiguousarray(phash))
            self._fx_pdq.add(np.ascontiguousarray(pdq))
            self._fx_dhash.add(np.ascontiguousarray(dhash))
            self._fx_dhash_v.add(np.ascontiguousarray(dv))

    def _search_global(self, q: _Query) -> dict[str, IndexHit]:
        if not q.groups and not q.pdq_rot:
            return {}
        alive = self._alive.view[:, 0]
        cand = {c for c in self._hash_candidates(q) if alive[c]}
        best = self._verify_global(q, cand, by_dhash=False)
        if not best:
            # dHash only when pHash/PDQ found nothing: its k-NN scan costs ~1 ms at 1M works.
            dh = {c for c in self._dhash_candidates(q) if alive[c]} - cand
            best = self._verify_global(q, dh, by_dhash=True)
            if not best:
                best = self._verify_vertical(q, exclude=cand | dh)
            if not best:
                best = self._verify_crops(q)
            if not best:
                best = self._verify_boxes(q)
        if PDQ_ROTATIONS and q.pdq_rot and q.quality >= PDQ_MIN_QUALITY and cand:
            rots = np.stack(q.pdq_rot)
            for slot in sorted(cand):
                dr = _hamming(rots, self._pdq.view[slot][None])
                j = int(np.argmin(dr))
                if dr[j] <= ROT_PDQ:
                    s = _score_global(int(dr[j]), ROT_PDQ) * 0.95
                    prev = best.get(slot)
                    if prev is None or s > prev[0]:
                        best[slot] = (
                            s,
                            "pdq_dihedral",
                            int(dr[j]),
                            {"pdq": int(dr[j]), "variant": f"dihedral_{_PDQ_ROT_INDICES[j]}"},
                        )
        out = {}
        for slot, (score, sig, dist, ev) in best.items():
            wid = self._slot_work[slot]
            out[wid] = IndexHit(
                work_id=wid, score=round(score, 4), signal=sig, distance=float(dist), evidence=ev
            )
        return out

    def _hash_candidates(self, q: _Query) -> set[int]:
        """Slots within the candidate radius of pHash (any variant) or PDQ (exact scans)."""
        cand: set[int] = set()
        if q.groups:
            ph = np.stack([g[1] for g in q.groups])
            _lims, _d, ids = self._fx_phash.range_search(ph, CAND_PHASH + 1)
            cand.update(ids.tolist())
        # One 256-bit scan per PDQ variant costs ~1 ms at 1M works: scan with the original
        # only (mirror/trim candidates come from the pHash scans, their PDQ is then checked on
        # the side table); the 90/180/270-degree variants only when PDQ_ROTATIONS is on.
        pq_list = [g[3] for g in q.groups[:1]] + (q.pdq_rot if PDQ_ROTATIONS else [])
        _lims, _d, ids = self._fx_pdq.range_search(np.stack(pq_list), CAND_PDQ + 1)
        cand.update(ids.tolist())
        return cand

    def _dhash_candidates(self, q: _Query) -> set[int]:
        """The few nearest slots by dHash (k-NN, not a range: blank pages crowd any radius)."""
        dh = [g[2] for g in q.groups if g[2] is not None and _informative_dhash(g[2])]
        if not dh or self._fx_dhash.ntotal == 0:
            return set()
        dist, ids = self._fx_dhash.search(np.stack(dh), min(DHASH_KNN, self._fx_dhash.ntotal))
        return {int(i) for i in ids[dist <= CAND_DHASH] if i >= 0}

    def _verify_vertical(self, q: _Query, exclude: set[int]) -> dict[int, tuple]:
        """The last proposal: the nearest works by vertical dHash, judged by the dense check
        alone (no hash rule vouches for them)."""
        if not self.use_dense or q.thumb is None or self._fx_dhash_v.ntotal == 0:
            return {}
        code = vertical_dhash(q.thumb.grey)
        if not _informative_dhash(code):
            return {}
        k = min(DHASH_KNN, self._fx_dhash_v.ntotal)
        dist, ids = self._fx_dhash_v.search(code[None], k)
        alive = self._alive.view[:, 0]
        near = [
            (int(d), int(s))
            for d, s in zip(dist[0], ids[0], strict=True)
            if s >= 0
            and d <= CAND_DHASH_V
            and alive[s]
            and self._slot_thumb[s] is not None
            and int(s) not in exclude
        ]
        best: dict[int, tuple[float, str, int, dict]] = {}
        for d, slot in near[:DHASH_VERIFY_TOP]:
            verdict = self._dense_global(q, slot, "", pdq_close=False)
            if verdict is None or not verdict.accepted:
                continue
            ev: dict[str, object] = {"dhash_v": d, "variant": "original"}
            ev.update(verdict.evidence())
            ev["verified"] = "dense"
            best[slot] = (
                _score_dense(verdict.dense, _score_global(d, CAND_DHASH_V)),
                "dhash_v",
                d,
                ev,
            )
        return best

    def _verify_crops(self, q: _Query) -> dict[int, tuple]:
        """Centre crops: the works with a rung of their crop ladder nearest the query, each
        judged by the dense check aligned as its nearest rung says. Slots the global
        candidates already judged are not excluded: they were judged as the whole picture."""
        if not self.use_dense or q.thumb is None or self._fx_crop.ntotal == 0:
            return {}
        if _plain_frame(q.thumb.grey):
            return {}
        best: dict[int, tuple[float, str, int, dict]] = {}
        rows = self._nearest_rows(self._fx_crop, self._crop_slot, _rung_box, q.thumb)
        for slot, d, rung_box in rows:
            wt = self._slot_thumb[slot]
            keep = _closest_keep(wt, q.thumb, rung_box[2])
            lo = (1.0 - keep) / 2
            A = _onto((lo, lo, keep, keep), q.thumb, wt)
            verdict = _judge(wt, q.thumb, A, pdq_close=False)
            if not verdict.accepted:
                continue
            align = verdict.dense.align if verdict.dense.align is not None else A
            (qh, qw), (wh, ww) = q.thumb.grey.shape, wt.grey.shape
            ev: dict[str, object] = {"crop_code": d, "variant": "crop", "crop_keep": keep}
            ev["region"] = _map_region(align, qw, qh, ww, wh)
            best[slot] = _dense_hit(verdict, ev, d, "dhash_crop")
        return best

    def _verify_boxes(self, q: _Query) -> dict[int, tuple]:
        """A picture on a page (a screenshot, a post): each of the query's page boxes looked
        up among the works' whole-picture codes, ranked by the tiny picture, and judged by the
        dense check aligned box to work (or to the work's drawing inside its margin)."""
        if not self.use_dense or q.thumb is None or self._fx_whole.ntotal == 0:
            return {}
        best: dict[int, tuple[float, str, int, dict]] = {}

        def whole_box(row: int) -> tuple[float, float, float, float]:
            return tuple(float(v) for v in self._whole_box.view[row])

        for box in page_boxes(q.thumb):
            qt = q.thumb.cropped(box)
            rows = self._nearest_rows(self._fx_whole, self._whole_slot, whole_box, qt)
            for slot, d, wbox in rows:
                wt = self._slot_thumb[slot]
                verdict = _judge(wt, qt, _onto(wbox, qt, wt), pdq_close=False)
                # The box is the picture itself: it must agree without an edge band set
                # aside as an overlay (the stem of a big black letter passed for a page icon
                # with its worst band discounted: 0.73 without; boxed copies: 0.81 or more).
                if not verdict.accepted or verdict.dense.agree < BOX_MIN_AGREE:
                    continue
                ev: dict[str, object] = {"box_code": d, "variant": "box"}
                ev["query_region"] = {k: round(v, 4) for k, v in zip("xywh", box, strict=True)}
                ev["region"] = {k: round(v, 4) for k, v in zip("xywh", wbox, strict=True)}
                best[slot] = _dense_hit(verdict, ev, d, "dhash_box")
            if best:
                break
        return best

    def _nearest_rows(
        self,
        fx: faiss.IndexBinaryFlat,
        slot_of: _Grow,
        box_of: Callable[[int], tuple[float, float, float, float]],
        query: Thumb,
    ) -> list[tuple[int, int, tuple[float, float, float, float]]]:
        """(slot, code distance, work box) of the CROP_VERIFY_TOP works whose rows of ``fx``
        (crop codes of a box of the work, row -> slot in ``slot_of``) lie nearest the code of
        ``query``: CROP_KNN rows within CAND_CROP, each work by its row whose box looks most
        like ``query`` in the tiny picture, the works ranked by that look."""
        code = crop_code(query.grey)
        if int(_POPCOUNT[code].sum()) < DHASH_MIN_BITS:
            return []  # a blank page: every blank crop is near it
        dist, ids = fx.search(code[None], min(CROP_KNN, fx.ntotal))
        alive = self._alive.view[:, 0]
        q_tiny = tiny(query)
        nearest: dict[int, tuple[float, int, tuple[float, float, float, float]]] = {}
        for d, row in zip(dist[0].tolist(), ids[0].tolist(), strict=True):
            if row < 0 or d > CAND_CROP:
                continue
            slot = int(slot_of.view[row, 0])
            wt = self._slot_thumb[slot]
            if not alive[slot] or wt is None:
                continue
            box = box_of(row)
            look = float(np.abs(tiny(wt.cropped(box)) - q_tiny).mean())
            if slot not in nearest or look < nearest[slot][0]:
                nearest[slot] = (look, int(d), box)
        ranked = sorted(nearest.items(), key=lambda kv: kv[1])[:CROP_VERIFY_TOP]
        return [(slot, d, box) for slot, (_look, d, box) in ranked]

    def _verify_global(
        self, q: _Query, cand: set[int], by_dhash: bool
    ) -> dict[int, tuple[float, str, int, dict]]:
        """Verify the best candidates (by pHash + PDQ / 4, or by dHash): slot -> (score,
        signal, distance, evidence) for those that pass."""
        if not cand:
            return {}
        c = np.array(sorted(cand), dtype=np.int64)
        cph, cdh, cpq = self._phash.view[c], self._dhash.view[c], self._pdq.view[c]
        has_d = self._has_dhash.view[c][:, 0]
        wq = self._quality.view[c][:, 0]
        qmin = np.minimum(wq, q.quality)
        # Per candidate: the best variant group by a combined distance.
        cand_best: dict[int, tuple[float, str, int, int, int, int]] = {}
        cand_orig: dict[int, tuple[float, str, int, int, int, int]] = {}  # the untrimmed query
        for name, gph, gdh, gpq in q.groups:
            dp = _hamming(cph, gph)
            dq = _hamming(cpq, gpq)
            dd = _hamming(cdh, gdh) if gdh is not None else np.full(len(c), 64, np.int32)
            dd = np.where(has_d, dd, 0 if gdh is None else dd)
            for k in range(len(c)):
                p, qd, d = int(dp[k]), int(dq[k]), int(dd[k])
                if by_dhash:
                    if gdh is None or not has_d[k] or d > CAND_DHASH:
                        continue
                    comb = float(d)
                elif p <= CAND_PHASH or qd <= CAND_PDQ:
                    comb = p + qd / 4.0
                else:
                    continue
                prev = cand_best.get(k)
                if prev is None or comb < prev[0]:
                    cand_best[k] = (comb, name, p, qd, d, int(qmin[k]))
                if not name:
                    cand_orig[k] = (comb, name, p, qd, d, int(qmin[k]))
        best: dict[int, tuple[float, str, int, dict]] = {}
        qorb = decode_orb(q.orb) if (self.use_orb and q.orb) else None
        top = DHASH_VERIFY_TOP if by_dhash else GLOBAL_VERIFY_TOP
        ranked = sorted(cand_best.items(), key=lambda kv: kv[1][0])[:top]
        for k, first in ranked:
            # A work with a uniform margin of its own (a flag on a white band) loses it to the
            # query's border trim, and the trimmed query no longer lines up with it: when the
            # trimmed variant is refused, the untrimmed one is judged too.
            attempts = [first]
            if first[1] == "trim" and k in cand_orig:
                attempts.append(cand_orig[k])
            for _comb, name, p, qd, d, qm in attempts:
                slot = int(c[k])
                ev: dict[str, object] = {"phash": p, "pdq": qd, "dhash": d}
                ev.update(variant=name or "original", pdq_quality=qm)
                sig = "dhash" if by_dhash else ("phash" if p <= qd / 4 else "pdq")
                # Within HMA's PDQ threshold the hashes already say "same picture": the grey
                # levels may then differ more (a tone curve, clipping, blur on thin lines).
                verdict = self._dense_global(
                    q, slot, name, pdq_close=qd <= PDQ_ALONE and qm >= PDQ_MIN_QUALITY
                )
                if verdict is not None:
                    # The thumbnails settle it: ORB and the hash rules only decide without them.
                    dense = verdict.dense
                    ev.update(verdict.evidence())
                    if not verdict.accepted:
                        continue
                    score = _score_dense(
                        dense, max(_score_global(p, CAND_PHASH), _score_global(qd, CAND_PDQ))
                    )
                    ev["verified"] = "dense"
                else:
                    can_verify = (
                        qorb is not None
                        and name != "mirror"  # ORB descriptors are not mirror invariant
                        and len(qorb[0]) >= ORB_MIN_VOTES
                        and self._slot_orb[slot] is not None
                        and self._slot_orb[slot][1] >= ORB_MIN_VOTES
                    )
                    inl = self._verify_slot(qorb, slot) if can_verify else None
                    if inl is not None:
                        ev["orb_inliers"] = inl
                    if inl is not None and inl >= GLOBAL_ORB_INLIERS:
                        score = max(_score_global(p, CAND_PHASH), _score_global(qd, CAND_PDQ))
                        ev["verified"] = "orb"
                    elif _strong_global(p, qd, d, qm) or (
                        _hash_rules(p, qd, d, qm) and (inl is None or inl >= GLOBAL_ORB_REFUTE)
                    ):
                        score = max(_score_global(p, PHASH_ALONE), _score_global(qd, PDQ_ALONE))
                        ev["verified"] = "hashes"
                    else:
                        continue
                dist = {"phash": p, "pdq": qd}.get(sig, d)
                if name:
                    sig = f"{sig}_{name}"
                prev = best.get(slot)
                if prev is None or score > prev[0]:
                    best[slot] = (score, sig, dist, ev)
                break
        return best

    def _dense_global(self, q: _Query, slot: int, variant: str, pdq_close: bool) -> _Verdict | None:
        """Dense (and fine) check of a global candidate: the same full picture, so the
        alignment is a scaling (of the mirrored or border-trimmed query for those variants)."""
        wt = self._slot_thumb[slot]
        qt = q.thumb
        if wt is None or qt is None:
            return None
        if variant == "mirror":
            qt = qt.mirrored()
        elif variant == "trim" and q.trim_box is not None:
            qt = qt.cropped(q.trim_box)
        (qh, qw), (wh, ww) = qt.grey.shape, wt.grey.shape
        return _judge(wt, qt, scale_transform(qw, qh, ww, wh), pdq_close)

    def _dense_orb(
        self, q_thumb: Thumb | None, slot: int, M: np.ndarray, qw: int, qh: int
    ) -> _Verdict | None:
        """Dense (and fine) check of an ORB candidate: the RANSAC similarity (query ORB px ->
        work ORB px) carried over to thumbnail pixels."""
        wt = self._slot_thumb[slot]
        orb = self._slot_orb[slot]
        if wt is None or q_thumb is None or orb is None:
            return None
        _, _, ww, wh = orb
        to_orb = np.diag([qw / q_thumb.grey.shape[1], qh / q_thumb.grey.shape[0], 1.0])
        to_thumb = np.diag([wt.grey.shape[1] / ww, wt.grey.shape[0] / wh, 1.0])
        A = (to_thumb @ np.vstack([M, [0, 0, 1]]) @ to_orb)[:2]
        return _judge(wt, q_thumb, A, pdq_close=False)

    def _verify_slot(self, qorb, slot: int) -> int | None:
        """Geometric check of one global candidate: ORB inliers of a similarity transform
        query -> work, or 0 when none is plausible."""
        qdesc, qkp, _qw, _qh = qorb
        start, n, ww, wh = self._slot_orb[slot]
        wdesc = self._fx_orb.reconstruct_n(start, n).reshape(n, 32)
        matches = _bf().match(np.ascontiguousarray(qdesc), np.ascontiguousarray(wdesc))
        good = [m for m in matches if m.distance <= ORB_DESC_RADIUS]
        if len(good) < ORB_MIN_VOTES:
            return 0
        src = qkp[[m.queryIdx for m in good]]
        dst = self._orb_kp.view[start + np.array([m.trainIdx for m in good])]
        res = _verify(src, dst, ww, wh, min_inliers=GLOBAL_ORB_INLIERS)
        return 0 if res is None else int(res[0])

    def _search_orb(self, orb: dict, q_thumb: Thumb | None) -> list[IndexHit]:
        if self._fx_orb.ntotal == 0:
            return []
        qdesc, qkp, qw, qh = decode_orb(orb)
        if len(qdesc) < ORB_MIN_VOTES:
            return []
        k = min(ORB_KNN, self._fx_orb.ntotal)
        dist, ids = self._fx_orb.search(np.ascontiguousarray(qdesc), k)
        qidx = np.repeat(np.arange(len(qdesc)), k)
        dist, ids = dist.ravel(), ids.ravel()
        keep = (ids >= 0) & (dist <= ORB_DESC_RADIUS)
        qidx, dist, ids = qidx[keep], dist[keep], ids[keep]
        if len(ids) == 0:
            return []
        owner = self._orb_slot.view[ids, 0]
        alive = self._alive.view[owner, 0]
        qidx, dist, ids, owner = qidx[alive], dist[alive], ids[alive], owner[alive]
        if len(ids) == 0:
            return []
        # Best correspondence per (query keypoint, work): sort by (owner, q, dist), keep first.
        order = np.lexsort((dist, qidx, owner))
        qidx, dist, ids, owner = qidx[order], dist[order], ids[order], owner[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (owner[1:] != owner[:-1]) | (qidx[1:] != qidx[:-1])
        qidx, dist, ids, owner = qidx[first], dist[first], ids[first], owner[first]
        slots, starts, votes = np.unique(owner, return_index=True, return_counts=True)
        ranked = np.argsort(-votes, kind="stable")[:ORB_VERIFY_TOP]
        hits: list[IndexHit] = []
        for r in ranked:
            if votes[r] < ORB_MIN_VOTES:
                break
            s0, n = starts[r], votes[r]
            slot = int(slots[r])
            src = qkp[qidx[s0 : s0 + n]]
            dst = self._orb_kp.view[ids[s0 : s0 + n]]
            _, _, ww, wh = self._slot_orb[slot]
            can_dense = q_thumb is not None and self._slot_thumb[slot] is not None
            min_inl = ORB_MIN_INLIERS_DENSE if can_dense else 0
            res = _verify(src, dst, ww, wh, min_inliers=min_inl, dense=can_dense)
            if res is None:
                continue
            inliers, M, inl_mask = res
            verdict = self._dense_orb(q_thumb, slot, M, qw, qh) if can_dense else None
            if verdict is None and inliers < ORB_MIN_INLIERS:
                continue
            if verdict is not None and not verdict.accepted:
                continue
            region = _map_region(M, qw, qh, ww, wh)
            qpts = src[inl_mask]
            qregion = {
                "x": round(float(qpts[:, 0].min() / qw), 4),
                "y": round(float(qpts[:, 1].min() / qh), 4),
                "w": round(float(np.ptp(qpts[:, 0]) / qw), 4),
                "h": round(float(np.ptp(qpts[:, 1]) / qh), 4),
            }
            scale = float(np.hypot(M[0, 0], M[1, 0]))
            angle = float(np.degrees(np.arctan2(M[1, 0], M[0, 0])))
            score = min(1.0, 0.5 + 0.5 * (inliers - ORB_MIN_INLIERS) / (4.0 * ORB_MIN_INLIERS))
            evidence: dict[str, object] = {
                "orb_inliers": inliers,
                "orb_votes": int(n),
                "region": region,
                "query_region": qregion,
                "scale": round(scale, 3),
                "rotation_deg": round(angle, 2),
            }
            if verdict is not None:
                evidence.update(verdict.evidence())
                score = _score_dense(verdict.dense, score)
            wid = self._slot_work[slot]
            hits.append(
                IndexHit(
                    work_id=wid,
                    score=round(0.9 * score, 4),
                    signal="orb",
                    distance=float(inliers),
                    evidence=evidence,
                )
            )
        return hits


_BF = None


def _bf():
    global _BF
    if _BF is None:
        _BF = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    return _BF


def _hash_rules(p: int, qd: int, d: int, quality: int) -> bool:
    """The hash-only rules of the first calibration: enough when ORB does not contradict."""
    if p <= PHASH_ALONE or (qd <= PDQ_ALONE and quality >= PDQ_MIN_QUALITY):
        return True
    return p <= 14 and qd <= 70 and d <= 18


def _informative_dhash(code: np.ndarray) -> bool:
    bits = int(_POPCOUNT[code].sum())
    return DHASH_MIN_BITS <= bits <= 64 - DHASH_MIN_BITS


@dataclass(frozen=True)
class _Verdict:
    """What the thumbnails say about an aligned candidate: the dense check, and the fine
    check when the dense check accepted and the work keeps a fine thumbnail."""

    dense: DenseCheck
    fine: FineCheck | None
    accepted: bool

    def evidence(self) -> dict[str, object]:
        ev = self.dense.as_evidence()
        if self.fine is not None:
            ev.update(self.fine.as_evidence())
        return ev


def _judge(work: Thumb, query: Thumb, A: np.ndarray, pdq_close: bool) -> _Verdict:
    dense = dense_check(work, query, A)
    if not _dense_accepts(dense, pdq_close):
        return _Verdict(dense, None, False)
    fine = fine_check(work, query, dense)
    accepted = fine is None or (
        fine.diff <= FINE_MAX_DIFF
        and fine.cluster <= FINE_MAX_CLUSTER
        and fine.structure <= FINE_MAX_STRUCTURE
    )
    return _Verdict(dense, fine, accepted)


def _dense_accepts(d: DenseCheck, pdq_close: bool = False) -> bool:
    """The aligned query reproduces the work wherever both are textured, in structure, grey
    levels and colour (an edge band may be an overlay)."""
    if max(d.overlap, d.query_overlap) < DENSE_MIN_CONTAINED:
        return False  # overlapping in part only, side by side: not a copy, crop or canvas
    if d.colour_moved > DENSE_MAX_COLOUR_MOVED:  # NaN (a grey side) does not refuse
        return False  # recoloured in part: another flag of the same layout, a lime for a lemon
    if d.colour_reversed > DENSE_MAX_COLOUR_REVERSED:
        return False  # a badge in the opposite colour, however small a share of the flag
    if d.work_chroma < MIN_CHROMA and (
        d.query_chroma > COLOUR_ADDED or d.query_coloured > COLOUR_ADDED_SHARE
    ):
        return False  # colours where the work has none
    if d.flat:
        # Both flat where they overlap: their faint detail decides, and pictures without any
        # (plain gradients, blank pages) are not identifiable at all.
        return (
            d.overlap >= DENSE_MIN_OVERLAP
            and d.smooth >= FLAT_MIN_CORR
            and not (d.colour < DENSE_MIN_COLOUR)
        )
    max_diff, min_colour = (
        (DENSE_MAX_DIFF_PDQ, DENSE_MIN_COLOUR_PDQ)
        if pdq_close
        else (DENSE_MAX_DIFF, DENSE_MIN_COLOUR)
    )
    return (
        d.overlap >= DENSE_MIN_OVERLAP
        and d.agree_band >= DENSE_ACCEPT
        and d.work_agree >= DENSE_MIN_AGREE
        and d.diff <= max_diff
        and not (d.colour < min_colour)  # NaN (a grey side) does not refuse
    )


def _score_dense(d: DenseCheck, score: float) -> float:
    return float(min(1.0, 0.5 * score + 0.5 * d.agree_band))


def _strong_global(p: int, qd: int, d: int, _quality: int) -> bool:
    """Global hashes strong enough to match without a geometric check (used when ORB cannot
    check: mirrored copies, too few keypoints, or an index without ORB)."""
    return p <= STRICT_PHASH and qd <= STRICT_PDQ and d <= STRICT_DHASH


def _verify(
    src: np.ndarray, dst: np.ndarray, ww: int, wh: int, min_inliers: int = 0, dense: bool = False
):
    """RANSAC similarity query->work; (inliers, 2x3 matrix, mask) or None if not plausible.

    Without a dense check to follow, the inliers must span ORB_MIN_SPREAD of the work in both
    directions (a shared logo or line of text gives a compact cluster); with one, a span in
    one direction suffices (a boomerang, a flag's band), the dense check judges the rest."""
    min_inliers = min_inliers or ORB_MIN_INLIERS
    if len(src) < ORB_MIN_VOTES:
        return None
    M, mask = cv2.estimateAffinePartial2D(
        src.reshape(-1, 1, 2),
        dst.reshape(-1, 1, 2),
        method=cv2.RANSAC,
        ransacReprojThreshold=ORB_RANSAC_PX,
        maxIters=2000,
        confidence=0.995,
        refineIters=10,
    )
    if M is None or mask is None:
        return None
    m = mask.ravel().astype(bool)
    # Count distinct work keypoints among inliers (many-to-one matches inflate counts).
    dpts = np.round(dst[m]).astype(np.int32)
    spts = np.round(src[m]).astype(np.int32)
    inliers = min(len(np.unique(dpts, axis=0)), len(np.unique(spts, axis=0))) if m.any() else 0
    if inliers < min_inliers:
        return None
    scale = float(np.hypot(M[0, 0], M[1, 0]))
    if not (ORB_SCALE_RANGE[0] <= scale <= ORB_SCALE_RANGE[1]):
        return None
    if abs(np.degrees(np.arctan2(M[1, 0], M[0, 0]))) > ORB_MAX_ROTATION:
        return None
    inl = dst[m]
    spread = (np.ptp(inl[:, 0]) / ww, np.ptp(inl[:, 1]) / wh)
    if (max(spread) if dense else min(spread)) < ORB_MIN_SPREAD:
        return None
    return inliers, M, m


def _map_region(M: np.ndarray, qw: int, qh: int, ww: int, wh: int) -> dict[str, float]:
    corners = np.array([[0, 0], [qw, 0], [0, qh], [qw, qh]], dtype=np.float64)
    mapped = corners @ M[:, :2].T + M[:, 2]
    x0 = float(np.clip(mapped[:, 0].min() / ww, 0, 1))
    x1 = float(np.clip(mapped[:, 0].max() / ww, 0, 1))
    y0 = float(np.clip(mapped[:, 1].min() / wh, 0, 1))
    y1 = float(np.clip(mapped[:, 1].max() / wh, 0, 1))
    return {"x": round(x0, 4), "y": round(y0, 4), "w": round(x1 - x0, 4), "h": round(y1 - y0, 4)}
