"""Provenance readers: what a file says about where it came from (see ``docs/provenance.md``).

A reader is a function ``(data, media_type) -> list[ProvenanceEvidence]`` registered in
:data:`READERS` (one line per reader). :func:`read_provenance` runs every reader that takes the
media type, in order, inside the decoding sandbox (``jobs.read_provenance_file``); a reader that
raises is recorded as a :class:`ReaderFailure` and the others still run. Readers that need the
computed fingerprint rather than the bytes (an audio ISCC from Chromaprint values) register in
:data:`FINGERPRINT_READERS`; they run in the service on trusted numbers, never on raw bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from contentmatch_shared.errors import MediaError
from contentmatch_shared.fingerprints import AudioFingerprint, ImageFingerprint
from contentmatch_shared.provenance import Provenance, ProvenanceEvidence, ReaderFailure

ProvenanceReader = Callable[[bytes, str], list[ProvenanceEvidence]]
FingerprintReader = Callable[[ImageFingerprint | AudioFingerprint], list[ProvenanceEvidence]]

IMAGE_AND_AUDIO = frozenset({"image", "audio"})


@dataclass(frozen=True)
class ReaderSpec:
    name: str
    read: ProvenanceReader
    media_types: frozenset[str] = IMAGE_AND_AUDIO


@dataclass(frozen=True)
class FingerprintReaderSpec:
    name: str
    read: FingerprintReader
    media_types: frozenset[str] = IMAGE_AND_AUDIO


def _c2pa(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
    from contentmatch_fingerprint.signals.provenance.c2pa import read_c2pa

    return read_c2pa(data, media_type)


def _xmp(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
    from contentmatch_fingerprint.signals.provenance.metadata import read_xmp

    return read_xmp(data, media_type)


def _png_text(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
    from contentmatch_fingerprint.signals.provenance.metadata import read_png_text

    return read_png_text(data, media_type)


def _exif(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
    from contentmatch_fingerprint.signals.provenance.metadata import read_exif

    return read_exif(data, media_type)


def _audio_tags(data: bytes, media_type: str) -> list[ProvenanceEvidence]:
    from contentmatch_fingerprint.signals.provenance.metadata import read_audio_tags

    return read_audio_tags(data, media_type)


def _iscc(fingerprint: ImageFingerprint | AudioFingerprint) -> list[ProvenanceEvidence]:
    from contentmatch_fingerprint.signals.provenance.computed import read_iscc

    return read_iscc(fingerprint)


def _watermark(fingerprint: ImageFingerprint | AudioFingerprint) -> list[ProvenanceEvidence]:
    from contentmatch_fingerprint.signals.provenance.computed import read_watermark

    return read_watermark(fingerprint)


READERS: list[ReaderSpec] = [
    ReaderSpec("c2pa", _c2pa),
    ReaderSpec("xmp", _xmp),
    ReaderSpec("png_text", _png_text, frozenset({"image"})),
    ReaderSpec("exif", _exif, frozenset({"image"})),
    ReaderSpec("audio_tags", _audio_tags, frozenset({"audio"})),
]

FINGERPRINT_READERS: list[FingerprintReaderSpec] = [
    FingerprintReaderSpec("watermark", _watermark, frozenset({"image"})),
    FingerprintReaderSpec("iscc", _iscc),
]


def _failure(name: str, exc: BaseException) -> ReaderFailure:
    if isinstance(exc, MediaError):
        return ReaderFailure(reader=name, code=exc.code, message=exc.message[:500])
    message = f"{type(exc).__name__}: {exc}"[:500]
    return ReaderFailure(reader=name, code="reader_failed", message=message)


def read_evidence(
    data: bytes, media_type: str, readers: list[ReaderSpec] | None = None
) -> tuple[list[ProvenanceEvidence], list[ReaderFailure]]:
    """Every reader's evidence, and the readers that failed (a failure never stops the rest)."""
    evidence: list[ProvenanceEvidence] = []
    failures: list[ReaderFailure] = []
    for spec in READERS if readers is None else readers:
        if media_type not in spec.media_types:
            continue
        try:
            evidence.extend(spec.read(data, media_type))
        except MemoryError:
            raise  # the sandbox reports it as the job's limit; the worker is not trusted after
        except Exception as exc:
            failures.append(_failure(spec.name, exc))
    return evidence, failures


def read_provenance(
    data: bytes, media_type: str, readers: list[ReaderSpec] | None = None
) -> Provenance:
    evidence, failures = read_evidence(data, media_type, readers)
    return Provenance.from_evidence(evidence, failures)


def with_fingerprint_evidence(
    provenance: Provenance,
    fingerprint: ImageFingerprint | AudioFingerprint,
    readers: list[FingerprintReaderSpec] | None = None,
) -> Provenance:
    """``provenance`` plus what the fingerprint readers derive from the computed signals."""
    specs = FINGERPRINT_READERS if readers is None else readers
    evidence = list(provenance.evidence)
    failures = list(provenance.failures)
    for spec in specs:
        if fingerprint.media_type not in spec.media_types:
            continue
        try:
            evidence.extend(spec.read(fingerprint))
        except Exception as exc:
            failures.append(_failure(spec.name, exc))
    if len(evidence) == len(provenance.evidence) and len(failures) == len(provenance.failures):
        return provenance
    return Provenance.from_evidence(evidence, failures)


def failed_provenance(reader: str, exc: BaseException) -> Provenance:
    """The provenance of a file whose reading job stopped as a whole (its sandbox limit)."""
    return Provenance(failures=[_failure(reader, exc)])
