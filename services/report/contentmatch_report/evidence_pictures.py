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

from contentmatch_report.thumbnails import ThumbnailError, make_thumbnail
from contentmatch_report.timeline import TimelineRow, draw_timeline
from contentmatch_shared.decode_sandbox import SandboxPool
from contentmatch_shared.errors import MediaError
from contentmatch_shared.events import Match, ObjectRef, UploadMatched
from contentmatch_shared.storage import ObjectStore

log = logging.getLogger(__name__)

# Thumbnails are for people: an original larger than this is not fetched just to shrink it.
MAX_IMAGE_BYTES = 40 * 1024 * 1024


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

    Thumbnails decode media (the upload, the registered original) in the decoding sandbox."""

    def __init__(self, store: ObjectStore, pool: SandboxPool) -> None:
        self._store = store
        self._pool = pool

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
            work_bytes, work_problem = await self._fetch_image(match.work_object, "work")
            if work_bytes is None:
                pictures.missing.append(work_problem)
                continue
            await self._add_thumbnail(
                pictures, work_bytes, match.evidence.get("region"), "work.jpg", "work_thumbnail"
            )
        return out

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
