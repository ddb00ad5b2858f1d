"""The pictures a person checks a report by, made from the media in S3.

- image uploads: a thumbnail of the upload and one of the matched work, side by side in the page;
  the matched region (``evidence["region"]`` in the work, ``evidence["query_region"]`` in the
  upload; ``{x, y, w, h}`` normalised to 0..1) is outlined when the matcher found one;
- audio uploads: a timeline of the upload with a bar per matched segment of the report's work
  (only that work: the upload's other matches may be other tenants' works).

Pictures are stored beside the report (``reports/<report_id>/<name>``) and named in its evidence
with their sha256, so the signature covers them. A picture that cannot be made (media deleted,
undecodable, too large) is left out and the reason recorded: the report itself must still be
issued. Transient S3 errors propagate, so the consumer retries the whole match result.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field

from contentmatch_report.thumbnails import (
    ThumbnailError,
    make_base_thumbnail,
    make_thumbnail,
    thumbnail_from_base,
)
from contentmatch_report.timeline import TimelineRow, draw_timeline
from contentmatch_shared.bounded_cache import TtlLru
from contentmatch_shared.decode_sandbox import SandboxPool
from contentmatch_shared.errors import MediaError
from contentmatch_shared.events import Match, ObjectRef, UploadMatched
from contentmatch_shared.storage import ObjectStore

log = logging.getLogger(__name__)

# Thumbnails are for people: an original larger than this is not fetched just to shrink it.
MAX_IMAGE_BYTES = 40 * 1024 * 1024
# Base thumbnails of works kept in memory (about 100-200 KB of PNG each).
WORK_THUMBNAILS_CACHED = 256
_WORK_THUMBNAIL_TTL_S = 3600.0


def work_thumbnail_key(work_id: str, sha256: str) -> str:
    """Where a work's base thumbnail is kept in the reports bucket: named by the original's
    sha256 too, so a work whose bytes changed never reuses the old picture."""
    return f"work-thumbnails/{work_id}-{sha256[:32]}.png"


@dataclass(frozen=True)
class Picture:
    name: str  # file name beside the report: upload.jpg, work.jpg, timeline.png
    role: str  # what it shows: upload_thumbnail, work_thumbnail, audio_timeline
    content_type: str
    data: bytes

    def reference(self) -> dict[str, object]:
        """What the signed report says about the picture (no storage key: readers fetch it by
        name from ``/v1/reports/{id}/assets/{name}``)."""
        return {
            "name": self.name,
            "role": self.role,
            "content_type": self.content_type,
            "size": len(self.data),
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }


@dataclass
class ReportPictures:
    """The pictures of one report, and why any expected one is missing."""

    pictures: list[Picture] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    upload_duration_s: float | None = None  # audio: the length of the upload's time axis


class EvidencePictureMaker:
    """Makes the pictures for every report of one match result (keyed by work id).

    Thumbnails decode media (the upload, the registered original) in the decoding sandbox. A
    registered original is decoded once: its un-outlined thumbnail (``make_base_thumbnail``) is
    kept beside the reports (``work_thumbnail_key``) and in memory, and each report outlines its
    region on a copy of it (the same JPEG as decoding the original again)."""

    def __init__(self, store: ObjectStore, pool: SandboxPool) -> None:
        self._store = store
        self._pool = pool
        self._work_bases: TtlLru[bytes] = TtlLru(WORK_THUMBNAILS_CACHED, _WORK_THUMBNAIL_TTL_S)

    async def for_result(self, result: UploadMatched) -> dict[str, ReportPictures]:
        if result.media_type == "image":
            return await self._image_pictures(result)
        return await self._audio_pictures(result)

    # -- images --------------------------------------------------------------------------------
    async def _image_pictures(self, result: UploadMatched) -> dict[str, ReportPictures]:
        upload_bytes, upload_problem = await self._fetch_image(result.object, "upload")
        out: dict[str, ReportPictures] = {}
        for match in result.matches:
            pictures = ReportPictures()
            out[match.work_id] = pictures
            if upload_bytes is not None:
                await self._add_thumbnail(
                    pictures,
                    upload_bytes,
                    match.evidence.get("query_region"),
                    "upload.jpg",
                    "upload_thumbnail",
                )
            else:
                pictures.missing.append(upload_problem)
            if match.work_object is None:
                pictures.missing.append("work: the match result names no work object")
                continue
            await self._add_work_thumbnail(
                pictures, match.work_id, match.work_object, match.evidence.get("region")
            )
        return out

    async def _add_work_thumbnail(
        self, pictures: ReportPictures, work_id: str, ref: ObjectRef, region: object
    ) -> None:
        role = "work_thumbnail"
        if not ref.sha256:  # nothing to name a cached picture by: from the original
            work_bytes, problem = await self._fetch_image(ref, "work")
            if work_bytes is None:
                pictures.missing.append(problem)
            else:
                await self._add_thumbnail(pictures, work_bytes, region, "work.jpg", role)
            return
        key = work_thumbnail_key(work_id, ref.sha256)
        base = self._work_bases.get(key)
        bucket = self._store.settings.bucket_reports
        if base is None:
            base = await self._store.get_bytes(bucket, key)
        if base is None:
            work_bytes, problem = await self._fetch_image(ref, "work")
            if work_bytes is None:
                pictures.missing.append(problem)
                return
            try:
                base = await self._pool.run(make_base_thumbnail, work_bytes)
            except ThumbnailError as exc:
                pictures.missing.append(f"{role}: {exc}")
                return
            except MediaError as exc:  # stopped by a sandbox limit
                pictures.missing.append(f"{role}: {exc.message} ({exc.code})")
                return
            await self._store.put_bytes(bucket, key, base, "image/png")
        try:
            jpeg = await asyncio.to_thread(thumbnail_from_base, base, region)
        except ThumbnailError as exc:
            self._work_bases.discard(key)
            pictures.missing.append(f"{role}: {exc}")
            return
        self._work_bases.put(key, base)
        pictures.pictures.append(Picture("work.jpg", role, "image/jpeg", jpeg))

    async def _fetch_image(self, ref: ObjectRef, what: str) -> tuple[bytes | None, str]:
        if ref.size is not None and ref.size > MAX_IMAGE_BYTES:
            return None, f"{what}: {ref.size} bytes is too large to thumbnail"
        data = await self._store.get_bytes(ref.bucket, ref.key)
        if data is None:
            return None, f"{what}: the object is no longer in storage"
        return data, ""

    async def _add_thumbnail(
        self, pictures: ReportPictures, data: bytes, region: object, name: str, role: str
    ) -> None:
        try:
            jpeg = await self._pool.run(make_thumbnail, data, region)
        except ThumbnailError as exc:
            pictures.missing.append(f"{role}: {exc}")
            return
        except MediaError as exc:  # stopped by a sandbox limit
            pictures.missing.append(f"{role}: {exc.message} ({exc.code})")
            return
        pictures.pictures.append(Picture(name, role, "image/jpeg", jpeg))

    # -- audio ---------------------------------------------------------------------------------
    async def _audio_pictures(self, result: UploadMatched) -> dict[str, ReportPictures]:
        duration = result.duration_s  # measured by fingerprint when it decoded the upload
        out: dict[str, ReportPictures] = {}
        for match in result.matches:
            rows = [timeline_row(match, highlighted=True)]
            png = await asyncio.to_thread(draw_timeline, duration or 0.0, rows)
            out[match.work_id] = ReportPictures(
                pictures=[Picture("timeline.png", "audio_timeline", "image/png", png)],
                missing=[] if duration else ["upload duration unknown: axis ends at last match"],
                upload_duration_s=round(duration, 3) if duration else None,
            )
        return out


def timeline_row(match: Match, *, highlighted: bool) -> TimelineRow:
    label = match.title if match.kind == "work" else f"{match.title} (AI output)"
    segments = [(s.query_start, s.query_end) for s in match.segments or []]
    return TimelineRow(label=label, segments=segments, highlighted=highlighted)
