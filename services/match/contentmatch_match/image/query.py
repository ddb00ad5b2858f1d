"""The query as the stages read it: hash variants, thumbnail, ORB features."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from contentmatch_match.image.signals.hashes import HashVariant, field_of, query_variants, trim_box
from contentmatch_match.image.signals.orb import OrbFeatures, orb_features
from contentmatch_match.image.signals.thumbnail import thumb_from_payload
from contentmatch_match.image.thumbs import Thumb


@dataclass
class ImageQuery:
    variants: list[HashVariant]  # "" (as it came), then "mirror", "trim" when present
    quality: int  # PDQ quality of the query
    orb_payload: dict | None
    thumb: Thumb | None
    trim_box: tuple[float, float, float, float] | None  # the picture inside a plain border

    @classmethod
    def parse(cls, fp: object) -> ImageQuery:
        extra = field_of(fp, "extra") or {}
        return cls(
            query_variants(fp),
            int(extra.get("pdq_quality", 100) or 0),
            extra.get("orb"),
            thumb_from_payload(extra.get("thumb")),
            trim_box(fp),
        )

    @cached_property
    def orb(self) -> OrbFeatures | None:
        return orb_features(self.orb_payload)
