"""What every media index offers the match service.

Indexes store integer ids internally (FAISS) and keep their own side table to ``work_id``;
the service joins work metadata. Implementations are thread-safe: the registry follower adds
while the upload matcher searches, both off the event loop.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field


class Segment(BaseModel):
    """A matched stretch, in seconds, in the query (upload) and in the reference (work)."""

    query_start: float
    query_end: float
    ref_start: float
    ref_end: float


class IndexHit(BaseModel):
    """One registered work that the query matches, with the evidence for it."""

    work_id: str
    score: float = Field(ge=0.0, le=1.0)
    signal: str  # which signal found it, e.g. "phash", "pdq", "orb", "chromaprint"
    distance: float | None = None  # signal-specific: Hamming bits, bit error rate, inliers...
    evidence: dict[str, object] = Field(default_factory=dict)
    segments: list[Segment] = Field(default_factory=list)


class MediaIndex(Protocol):
    def add(self, work_id: str, fingerprint: object) -> None:
        """Insert or replace the work's fingerprint (idempotent for the same work_id)."""

    def remove(self, work_id: str) -> None:
        """Forget the work; unknown ids are ignored."""

    def search(self, fingerprint: object, limit: int = 10) -> list[IndexHit]:
        """Works that match the query, best first; empty when nothing passes the thresholds."""

    def __len__(self) -> int: ...

    def memory_bytes(self) -> int: ...
