"""The thumbnail signal: grey and chroma planes the judges compare (wire format in
``contentmatch_shared.thumb_payload``)."""

from __future__ import annotations

from contentmatch_match.image.thumbs import Thumb
from contentmatch_shared.thumb_payload import decode_chroma, decode_thumb


def thumb_from_payload(payload: object) -> Thumb | None:
    """A fingerprint without a (valid) thumbnail is still indexed: dense checks are skipped."""
    if not isinstance(payload, dict):
        return None
    try:
        return Thumb(decode_thumb(payload), decode_chroma(payload))
    except (KeyError, TypeError, ValueError):
        return None
