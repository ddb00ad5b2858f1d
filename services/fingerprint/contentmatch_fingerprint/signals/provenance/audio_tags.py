"""Audio tags (ID3, Vorbis comments, MP4 atoms, RIFF INFO, ASF) read with tinytag (MIT): the
ISRC and ISWC a file carries, checked like registered identifiers (``identifiers``), its
comments and the software that encoded it (an AI music generator may name itself there)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO

from tinytag import TinyTag, TinyTagException

from contentmatch_shared.identifiers import isrc_valid, iswc_valid

MAX_VALUES = 8
MAX_CHARS = 500
_SEPARATORS = re.compile(r"[\s\-.]")
_SOFTWARE_FIELDS = ("encoded_by", "encoder_settings", "encoder", "software", "encodedby")


@dataclass(frozen=True)
class AudioTagFacts:
    isrc: tuple[str, ...] = ()  # valid, compact
    iswc: tuple[str, ...] = ()
    invalid_identifiers: tuple[str, ...] = ()  # "isrc: value" as written
    comments: tuple[str, ...] = ()
    software: tuple[str, ...] = ()
    title: str | None = None
    artist: str | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.isrc or self.iswc or self.invalid_identifiers or self.comments or self.software
        )


def _clip(value: str) -> str:
    value = value.strip()
    return value if len(value) <= MAX_CHARS else value[: MAX_CHARS - 1] + "…"


def _listed(values: object) -> list[str]:
    if values is None:
        return []
    items = values if isinstance(values, list) else [values]
    return [_clip(str(v)) for v in items[:MAX_VALUES] if str(v).strip()]


def read_audio_tags(source: str | BinaryIO) -> AudioTagFacts:
    """The tags of an audio file (a path, or a file object: its format is then told by its
    magic bytes); empty facts when tinytag cannot read them."""
    try:
        if isinstance(source, str):
            tag = TinyTag.get(source, tags=True, duration=False, image=False)
        else:
            tag = TinyTag.get(file_obj=source, tags=True, duration=False, image=False)
    except (TinyTagException, OSError, ValueError, KeyError, IndexError, UnicodeError):
        return AudioTagFacts()
    other = {k.lower(): v for k, v in (tag.other or {}).items()}
    found: dict[str, list[str]] = {"isrc": [], "iswc": [], "invalid": []}
    for scheme, check in (("isrc", isrc_valid), ("iswc", iswc_valid)):
        for value in _listed(other.get(scheme)):
            compact = _SEPARATORS.sub("", value).upper()
            if check(compact):
                if compact not in found[scheme]:
                    found[scheme].append(compact)
            else:
                found["invalid"].append(f"{scheme}: {value[:40]}")
    # (a TXXX "comment" frame lands in other["_comment"]: tinytag keeps "comment" for COMM)
    comments = _listed(tag.comment) + _listed(other.get("_comment"))
    software = [v for field in _SOFTWARE_FIELDS for v in _listed(other.get(field))]
    return AudioTagFacts(
        isrc=tuple(found["isrc"]),
        iswc=tuple(found["iswc"]),
        invalid_identifiers=tuple(found["invalid"][:MAX_VALUES]),
        comments=tuple(dict.fromkeys(comments))[:MAX_VALUES],
        software=tuple(dict.fromkeys(software))[:MAX_VALUES],
        title=_clip(tag.title) if tag.title else None,
        artist=_clip(tag.artist) if tag.artist else None,
    )
