"""The ``contentmatch`` command: run a service, verify a report, publish uploads directly,
re-fingerprint registered works."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

SERVICES = {
    "ingest": ("contentmatch_ingest.app:create_app", "ingest_port"),
    "fingerprint": ("contentmatch_fingerprint.app:create_app", "fingerprint_port"),
    "match": ("contentmatch_match.app:create_app", "match_port"),
    "report": ("contentmatch_report.app:create_app", "report_port"),
}


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from contentmatch_shared.settings import get_settings

    settings = get_settings()
    factory, port_attr = SERVICES[args.service]
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {args.service} %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        factory,
        factory=True,
        host=settings.host,
        port=args.port or getattr(settings, port_attr),
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from contentmatch_report.signing import VerificationError, verify_report

    try:
        report = json.loads(Path(args.file).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"not verified: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    public_key = args.public_key
    if public_key is None:
        import httpx

        url = args.url.rstrip("/") + "/v1/reports/public-key"
        try:
            public_key = httpx.get(url, timeout=10).raise_for_status().json()["public_key"]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            print(f"not verified: cannot fetch the public key from {url}: {exc}", file=sys.stderr)
            return 2
    try:
        verify_report(report, public_key)
    except VerificationError as exc:
        print(f"NOT AUTHENTIC: {exc}", file=sys.stderr)
        return 1
    print(
        f"authentic: report {report.get('report_id')} signed by key {report['signature']['key_id']}"
    )
    return 0


def _publish_upload(args: argparse.Namespace) -> int:
    from contentmatch_shared.direct_upload import publish_file

    upload_id = publish_file(args.file, tenant=args.tenant, external_id=args.external_id)
    print(upload_id)
    return 0


def _refingerprint(args: argparse.Namespace) -> int:
    from contentmatch_shared.refingerprint import refingerprint

    ids = refingerprint(tenant=args.tenant, dry_run=args.dry_run)
    for work_id in ids:
        print(work_id)
    verb = "would be re-fingerprinted" if args.dry_run else "republished for re-fingerprinting"
    print(f"{len(ids)} works {verb}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contentmatch")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=sorted(SERVICES))
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=_serve)

    report = sub.add_parser("report", help="report tools")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    verify = report_sub.add_parser("verify", help="check a report's signature")
    verify.add_argument("file")
    verify.add_argument("--public-key", help="base64 raw Ed25519 public key")
    verify.add_argument(
        "--url", default="http://127.0.0.1:8084", help="report service to fetch the key from"
    )
    verify.set_defaults(func=_verify)

    publish = sub.add_parser(
        "publish-upload", help="put a file into S3 and publish it on the uploads topic"
    )
    publish.add_argument("file")
    publish.add_argument("--tenant", required=True)
    publish.add_argument("--external-id", default=None)
    publish.set_defaults(func=_publish_upload)

    again = sub.add_parser(
        "refingerprint-works",
        help="republish registered works so that the current signals fingerprint them again",
    )
    again.add_argument("--tenant", default=None, help="only this tenant's works")
    again.add_argument("--dry-run", action="store_true", help="list the works, publish nothing")
    again.set_defaults(func=_refingerprint)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
