"""``make demo``: register sample works, upload altered copies and strangers, show what matched.

Runs against the stack that ``make up`` started. Samples are generated (seeded), so nothing is
downloaded. Works are registered with an Idempotency-Key, so running the demo again reuses them.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from contentmatch_delivery.signing import SIGNATURE_HEADER, SignatureError, verify
from contentmatch_shared.client import ContentMatchClient, Endpoints
from tests.fixtures import audio
from tests.fixtures.images import make_image, to_bytes, transform_bytes
from tests.support.webhook_receiver import WebhookReceiver

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Sample:
    name: str
    data: bytes
    filename: str


def _admin_key() -> str:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "stack.sh"), "admin-key"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _endpoints() -> Endpoints:
    return Endpoints(
        ingest=f"http://127.0.0.1:{os.environ.get('CM_INGEST_PORT', '8081')}",
        report=f"http://127.0.0.1:{os.environ.get('CM_REPORT_PORT', '8084')}",
        delivery=f"http://127.0.0.1:{os.environ.get('CM_DELIVERY_PORT', '8085')}",
    )


def _audio_file(samples, codec: str, tmp: Path, name: str) -> bytes:  # type: ignore[no-untyped-def]
    wav = tmp / f"{name}.wav"
    audio.write_wav(wav, samples)
    if codec == "wav":
        return wav.read_bytes()
    out = tmp / f"{name}{audio.codec_extension(codec)}"
    audio.encode(wav, out, codec)
    return out.read_bytes()


def main() -> None:
    started = time.monotonic()
    endpoints = _endpoints()
    operator = ContentMatchClient(_admin_key(), endpoints)
    photo_agency = ContentMatchClient(operator.create_key("rightsholder", "lumen-photo"), endpoints)
    label = ContentMatchClient(operator.create_key("rightsholder", "northwind-records"), endpoints)
    ai_dev = ContentMatchClient(operator.create_key("rightsholder", "pixelforge-ai"), endpoints)
    platform = ContentMatchClient(operator.create_key("platform", "streamtube"), endpoints)
    enforcement = ContentMatchClient(
        operator.create_key("enforcement", "northwind-records"), endpoints
    )

    # The platform's verdicts are pushed to a receiver on this machine (make up allows loopback).
    receiver = WebhookReceiver(0).start()
    for old in platform.webhooks():  # a previous demo's
        platform.delete_webhook(old["webhook_id"])
    hook = platform.create_webhook(f"{receiver.url}/streamtube", description="make demo")

    print("== Registering works")
    works: dict[str, str] = {}
    for seed in range(1, 7):
        works[f"photo-{seed}"] = photo_agency.register_work(
            to_bytes(make_image(seed), "PNG"),
            f"photo-{seed}.png",
            {"title": f"Lumen photo #{seed}", "kind": "work", "policy": "monetize"},
            idempotency_key=f"demo-photo-{seed}",
        )
    for seed in (7, 8):
        works[f"ai-image-{seed}"] = ai_dev.register_work(
            to_bytes(make_image(seed), "PNG"),
            f"gen-{seed}.png",
            {
                "title": f"PixelForge render #{seed}",
                "kind": "ai_output",
                "policy": "track",
                "ai_system": {"provider": "PixelForge", "model": "pf-diffusion", "version": "3"},
            },
            idempotency_key=f"demo-ai-image-{seed}",
        )
    tracks = {seed: audio.make_track(seed, seconds=40.0) for seed in (11, 12)}
    with tempfile.TemporaryDirectory(prefix="cm-demo-") as tmpdir:
        tmp = Path(tmpdir)
        for seed, samples in tracks.items():
            works[f"track-{seed}"] = label.register_work(
                _audio_file(samples, "flac", tmp, f"track-{seed}"),
                f"track-{seed}.flac",
                {
                    "title": f"Northwind track {seed}",
                    "kind": "work",
                    "policy": "block",
                    "identifiers": {"isrc": f"GBNWR26000{seed}"},
                    "territories": ["GB", "FR", "DE"],
                },
                idempotency_key=f"demo-track-{seed}",
            )
        owners = {"photo": photo_agency, "ai": ai_dev, "track": label}
        for name, work_id in works.items():
            work = owners[name.split("-")[0]].wait_work(work_id)
            print(f"  {name:<12} {work_id}  {work['media_type']:<5} {work['status']}")

        print("\n== Uploading altered copies and unrelated media as platform 'streamtube'")
        sr = audio.DEFAULT_SR
        uploads: list[tuple[str, str]] = []
        for seed, transform in ((1, "resize_third"), (2, "jpeg_q20"), (3, "webp_small"),
                                (4, "resize_half"), (5, "center_crop_60"), (6, "mirror"),
                                (7, "jpeg_q75")):  # fmt: skip
            data, ext = transform_bytes(make_image(seed), transform, seed=seed)
            label_text = f"{'ai-image' if seed > 6 else 'photo'}-{seed} {transform}"
            uploads.append((label_text, platform.submit_upload(data, f"up.{ext}")))
        for seed in (900, 901, 902):
            data = to_bytes(make_image(seed), "JPEG", quality=85)
            uploads.append((f"unrelated image {seed}", platform.submit_upload(data, "other.jpg")))
        clip = audio.excerpt(tracks[11], sr, 12.0, 10.0)
        uploads.append((
            "track-11 10 s excerpt @12 s, mp3",
            platform.submit_upload(_audio_file(clip, "mp3", tmp, "clip"), "clip.mp3",
                                   {"external_id": "video-123", "territory": "FR"}),
        ))  # fmt: skip
        mix = audio.mashup(
            audio.excerpt(tracks[11], sr, 5.0, 12.0), audio.excerpt(tracks[12], sr, 20.0, 12.0)
        )
        uploads.append((
            "mashup track-11 + track-12, ogg",
            platform.submit_upload(_audio_file(mix, "ogg", tmp, "mix"), "mix.ogg"),
        ))  # fmt: skip
        stranger = audio.make_track(99, seconds=20.0)
        uploads.append((
            "unrelated track, m4a",
            platform.submit_upload(_audio_file(stranger, "m4a", tmp, "other"), "other.m4a"),
        ))  # fmt: skip

    print(f"\n{'upload':<36} {'status':<9} {'matched work':<38} {'score':>5}  signal / segments")
    names = {v: k for k, v in works.items()}
    report_ids: list[str] = []
    for what, upload_id in uploads:
        upload = platform.wait_upload(upload_id)
        if not upload["matches"]:
            print(f"{what:<36} {upload['status']:<9} {'-':<38} {'':>5}")
        for i, match in enumerate(upload["matches"]):
            where = match["signal"]
            region = match["evidence"].get("region")
            if region:
                where += " in region x={x:.2f} y={y:.2f} w={w:.2f} h={h:.2f}".format(**region)
            if match.get("segments"):
                where += " " + ", ".join(
                    f"q {s['query_start']:.1f}-{s['query_end']:.1f}s = "
                    f"ref {s['ref_start']:.1f}-{s['ref_end']:.1f}s"
                    for s in match["segments"]
                )
            work_name = names.get(match["work_id"], match["work_id"])
            print(
                f"{what if i == 0 else '':<36} {upload['status'] if i == 0 else '':<9} "
                f"{work_name + ' (' + match['kind'] + ')':<38} {match['score']:>5.2f}  {where}"
            )
        report_ids += [r["report_id"] for r in upload.get("reports", [])]

    print("\n== Reports")
    bucket = os.environ.get("CM_BUCKET_REPORTS", "cm-reports")
    for report_id in report_ids:
        report = operator.report(report_id)
        print(
            f"  {report['kind']:<12} {report_id}  action={report['decision']['action']:<18} "
            f"s3://{bucket}/reports/{report_id}.json"
        )
    print(f"\n  JSON: {endpoints.report}/v1/reports/<report_id>   (Authorization: Bearer <key>)")
    print(f"  HTML: {endpoints.report}/v1/reports/<report_id>?format=html")
    listed = enforcement.reports(kind="enforcement")["reports"]
    print(f"  northwind-records' enforcement key sees {len(listed)} enforcement report(s)")
    print("\n== Webhooks (pushed to the platform, no polling)")
    receiver.wait_for(
        "/streamtube",
        lambda got: sum(r.json()["type"] == "upload.verdict" for r in got) >= len(uploads),
        timeout_s=30,
    )
    time.sleep(1.0)  # the last reports' deliveries
    received = receiver.at("/streamtube")
    receiver.stop()
    try:
        for request in received:
            verify(request.headers.get(SIGNATURE_HEADER), request.body, hook["secret"])
        signed = "every signature verified"
    except SignatureError as exc:
        signed = f"SIGNATURE FAILED: {exc}"
    kinds = [r.json()["type"] for r in received]
    print(
        f"  {kinds.count('upload.verdict')} verdicts and {kinds.count('report.created')} report "
        f"notices POSTed to {receiver.url}/streamtube; {signed}"
    )
    print(f"  delivery log: {endpoints.delivery}/v1/webhooks/{hook['webhook_id']}/deliveries")
    print("  (the next demo run deletes this webhook; its receiver stopped with this run)")
    print(f"  operator key: {operator._http.headers['Authorization'].split()[1]}")
    print(f"\nDemo finished in {time.monotonic() - started:.1f} s. Stop the stack with: make down")


if __name__ == "__main__":
    main()
