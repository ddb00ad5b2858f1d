"""The report consumer: match results in, signed reports (and ``reports.created``) out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord

from contentmatch_report.builder import (
    EvidenceAttachments,
    build_reports,
    report_id_for,
    report_ids_for,
)
from contentmatch_report.evidence_pictures import EvidencePictureMaker
from contentmatch_report.signing import ReportSigner
from contentmatch_report.store import ReportStore, report_key
from contentmatch_shared import metrics
from contentmatch_shared.decode_sandbox import SandboxPool
from contentmatch_shared.events import Envelope, ReportCreated, UploadMatched, utcnow
from contentmatch_shared.runtime import ServiceRuntime
from contentmatch_shared.topics import REPORTS_CREATED


class ReportWriter:
    """Handler: for each matched work, pictures → report → signature → S3 → ``reports.created``.

    Idempotent: report ids derive from (upload, work) and a replay keeps the first ``created_at``
    (read back from the stored report), so the same keys result and pictures are overwritten with
    the same bytes. Pictures are stored before the report that names them, so a report in S3
    never points at a picture that is not there yet."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        reports: ReportStore,
        signer: ReportSigner,
        pool: SandboxPool,
    ) -> None:
        self._runtime = runtime
        self._reports = reports
        self._signer = signer
        self._pictures = EvidencePictureMaker(runtime.store, pool)

    async def __call__(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        result = envelope.payload
        if not isinstance(result, UploadMatched):
            return
        report_ids = report_ids_for(result)
        if not report_ids:
            return
        created: dict[str, datetime] = {}
        now = utcnow()
        for report_id, _ in report_ids:
            existing = await self._reports.get(report_id)
            created[report_id] = datetime.fromisoformat(existing["created_at"]) if existing else now

        attachments: dict[str, EvidenceAttachments] = {}
        made_pictures = await self._pictures.for_result(result) if result.matches else {}
        for work_id, made in made_pictures.items():
            report_id = report_id_for(result.upload_id, work_id)
            references = []
            for picture in made.pictures:
                await self._reports.put_asset(
                    report_id, picture.name, picture.data, picture.content_type
                )
                references.append(picture.reference())
            attachments[work_id] = EvidenceAttachments(
                references=references,
                missing=made.missing,
                upload_duration_s=made.upload_duration_s,
            )

        for report in build_reports(result, created, attachments):
            signed = self._signer.sign(report)
            work = signed["work"]  # None in an attribution report from provenance alone
            await self._reports.put(signed)
            await self._runtime.producer.publish(
                REPORTS_CREATED,
                result.upload_id,
                ReportCreated(
                    report_id=signed["report_id"],
                    kind=signed["kind"],
                    upload_id=result.upload_id,
                    platform_tenant=result.tenant,
                    work_tenants=[work["tenant"]] if work else [],
                    work_ids=[work["work_id"]] if work else [],
                    bucket=self._reports.bucket,
                    key=report_key(signed["report_id"]),
                    created_at=created[signed["report_id"]],
                ),
                correlation_id=envelope.correlation_id,
            )
            metrics.REPORTS_CREATED.labels(signed["kind"]).inc()
