"""Whole-picture hashes (pHash 64, dHash 64, PDQ 256 bits) and their query variants.

The fingerprint service sends each hash of the picture as it came and, in
``extra["variants"]``, of its mirror image (PDQ: its 8 dihedral variants) and of the picture
inside a trimmed border (with the trimmed box). A query is searched with every variant; a
work is stored with its canonical hashes, one row per work in each table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contentmatch_match.image.signals.codes import hex_codes
from contentmatch_match.image.tables import TableSpec

PHASH = TableSpec("phash", 8, one_per_work=True)
PDQ = TableSpec("pdq", 32, one_per_work=True)
DHASH = TableSpec("dhash", 8, one_per_work=True)  # zeros for works without one (filtered)

PDQ_MIRROR_INDEX = 5  # in pdqhash.compute_dihedral order, 5 = left-right mirror (measured)


def field_of(fp: object, name: str):
    """A fingerprint field, from the event model or its dict."""
    if isinstance(fp, dict):
        return fp.get(name)
    return getattr(fp, name, None)


@dataclass(frozen=True)
class HashVariant:
    """The query's hashes as one variant of the picture: "" (as it came), "mirror", "trim"."""

    name: str
    phash: np.ndarray
    dhash: np.ndarray | None
    pdq: np.ndarray


@dataclass(frozen=True)
class WorkHashes:
    phash: np.ndarray
    dhash: np.ndarray  # zeros when the work has none
    has_dhash: bool
    pdq: np.ndarray
    quality: int  # PDQ quality 0..100 (low: flat picture, PDQ not trusted)


def work_hashes(fp: object) -> WorkHashes:
    hashes = field_of(fp, "hashes") or {}
    extra = field_of(fp, "extra") or {}
    dh = hashes.get("dhash")
    return WorkHashes(
        hex_codes(hashes["phash"], 8),
        hex_codes(dh, 8) if dh else np.zeros(8, np.uint8),
        bool(dh),
        hex_codes(hashes["pdq"], 32),
        int(extra.get("pdq_quality", 100) or 0),
    )


def query_variants(fp: object) -> list[HashVariant]:
    hashes = field_of(fp, "hashes") or {}
    variants = (field_of(fp, "extra") or {}).get("variants") or {}
    out = []
    ph, dh, pq = hashes.get("phash"), hashes.get("dhash"), hashes.get("pdq")

    def dhash(h: str | None) -> np.ndarray | None:
        return hex_codes(h, 8) if h else None

    if ph and pq:
        out.append(HashVariant("", hex_codes(ph, 8), dhash(dh), hex_codes(pq, 32)))
    dihedral = [h for h in str(variants.get("pdq_dihedral") or "").split(",") if h]
    if variants.get("phash_mirror") and len(dihedral) == 8:
        out.append(
            HashVariant(
                "mirror",
                hex_codes(variants["phash_mirror"], 8),
                dhash(variants.get("dhash_mirror")),
                hex_codes(dihedral[PDQ_MIRROR_INDEX], 32),
            )
        )
    if variants.get("phash_trim") and variants.get("pdq_trim"):
        out.append(
            HashVariant(
                "trim",
                hex_codes(variants["phash_trim"], 8),
                dhash(variants.get("dhash_trim")),
                hex_codes(variants["pdq_trim"], 32),
            )
        )
    return out


def trim_box(fp: object) -> tuple[float, float, float, float] | None:
    """The (x, y, w, h) box of the picture inside the query's trimmed border."""
    box = ((field_of(fp, "extra") or {}).get("variants") or {}).get("trim_box")
    return tuple(float(v) for v in box) if box and len(box) == 4 else None
