"""The ``contentmatch`` command: run a service, verify a report, publish uploads directly,
re-fingerprint registered works, inspect and redrive dead letters."""

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
    "delivery": ("contentmatch_delivery.app:create_app", "delivery_port"),
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
    from contentmatch_report.jcs import CanonicalizationError, loads_strict
    from contentmatch_report.signing import VerificationError, verify_report_with_keys

    try:
        text = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"not verified: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        report = loads_strict(text)
    except CanonicalizationError as exc:  # a duplicate member: two readers, two reports
        print(f"NOT AUTHENTIC: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"not verified: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(report, dict):
        print(f"not verified: {args.file} is not a JSON object", file=sys.stderr)
        return 2
    try:
        keys = _verification_keys(args, report)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"not verified: cannot get the public keys: {exc}", file=sys.stderr)
        return 2
    try:
        key_id = verify_report_with_keys(report, keys)
    except VerificationError as exc:
        print(f"NOT AUTHENTIC: {exc}", file=sys.stderr)
        return 1
    print(f"authentic: report {report.get('report_id')} signed by key {key_id}")
    return 0


def _verification_keys(args: argparse.Namespace, report: dict[str, object]) -> dict[str, str]:
    """key id -> base64 public key: the one given, a saved key listing, or the service's."""
    from contentmatch_report.signing import key_id_of, public_key_from_b64

    if args.public_key is not None:
        return {key_id_of(public_key_from_b64(args.public_key)): args.public_key}
    if args.keys is not None:
        listing = json.loads(Path(args.keys).read_text())
    else:
        import httpx

        base = args.url.rstrip("/") + "/v1/reports/public-key"
        response = httpx.get(base + "s", timeout=10)
        if response.status_code == 404:  # a service older than the key history
            listing = {"keys": [httpx.get(base, timeout=10).raise_for_status().json()]}
        else:
            listing = response.raise_for_status().json()
    return {str(k["key_id"]): str(k["public_key"]) for k in listing["keys"]}


def _keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from contentmatch_report.signing import SigningKeyEntry, private_key_b64

    key = Ed25519PrivateKey.generate()
    public = SigningKeyEntry(key.public_key(), None, None, current=True).info()
    print(
        json.dumps(
            {
                "private_key": private_key_b64(key),
                "key_id": public["key_id"],
                "public_key": public["public_key"],
            },
            indent=2,
        )
    )
    return 0


def _publish_upload(args: argparse.Namespace) -> int:
    import os

    import httpx

    from contentmatch_shared.direct_upload import publish_file

    api_key = os.environ.get("CM_API_KEY", "")
    if not api_key:
        print("error: set CM_API_KEY to the platform's API key", file=sys.stderr)
        return 2
    try:
        upload_id = publish_file(
            args.file, api_key=api_key, ingest_url=args.url, external_id=args.external_id
        )
    except httpx.HTTPStatusError as exc:
        print(f"error: {exc.response.status_code} {exc.response.text[:300]}", file=sys.stderr)
        return 1
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


def _dlq(args: argparse.Namespace) -> int:
    import asyncio

    from contentmatch_shared import dead_letters as dl
    from contentmatch_shared.settings import get_settings

    settings = get_settings()
    try:
        if args.dlq_command == "list":
            letters = asyncio.run(dl.read_dead_letters(settings, args.topic))
            if args.json:
                print(json.dumps([d.summary() for d in letters], indent=2))
            for d in [] if args.json else letters:
                redriven = f" redriven={len(d.redriven)}" if d.redriven else ""
                error = (d.headers.get("error") or "").replace("\n", " ")[:160]
                print(
                    f"{d.dlq}@{d.offset}\t{d.at}\tfrom {d.origin}\t"
                    f"{d.headers.get('service', '?')}/{d.headers.get('consumer_group', '?')}\t"
                    f"{d.headers.get('failure', '?')}{redriven}\t{error}"
                )
            print(f"{len(letters)} dead letters", file=sys.stderr)
            return 0
        if args.dlq_command == "show":
            letters = asyncio.run(dl.read_dead_letters(settings, args.topic))
            found = [d for d in letters if d.offset == args.offset]
            if not found:
                print(f"no dead letter at offset {args.offset} of {args.topic}", file=sys.stderr)
                return 1
            letter = found[0]
            print(json.dumps({**letter.summary(), "headers": letter.headers}, indent=2))
            print(json.dumps([*letter.redriven], indent=2) if letter.redriven else "never redriven")
            print(dl.render_value(letter.value))
            return 0
        first = last = None
        if args.offsets:
            first, last = dl.parse_offsets(args.offsets)
        elif not args.all:
            print("redrive needs --offsets N[-M] or --all", file=sys.stderr)
            return 2
        result = asyncio.run(
            dl.redrive(
                settings,
                args.topic,
                first=first,
                last=last,
                force=args.force,
                dry_run=args.dry_run,
            )
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verb = "would redrive" if args.dry_run else "redrove"
    for d in result.sent:
        print(f"{verb} {d.dlq}@{d.offset} -> {d.headers.get('origin_topic')}")
    for d in result.skipped:
        print(f"skipped {d.dlq}@{d.offset}: redriven before (--force to send it again)")
    print(f"{len(result.sent)} {verb.split()[-1]}, {len(result.skipped)} skipped", file=sys.stderr)
    return 0


def _kafka_bootstrap(args: argparse.Namespace) -> int:
    import asyncio

    from contentmatch_shared.kafka.admin import ensure_topics
    from contentmatch_shared.kafka.security import (
        SERVICES,
        apply_service_acls,
        ensure_service_users,
        service_principal,
    )
    from contentmatch_shared.settings import get_settings

    settings = get_settings()
    asyncio.run(ensure_topics(settings))
    if args.scram_users:
        added = asyncio.run(ensure_service_users(settings, Path(args.scram_users)))
        if added:
            print(f"SCRAM credentials set for {', '.join(added)}", file=sys.stderr)
    asyncio.run(apply_service_acls(settings))
    names = ", ".join(service_principal(s) for s in SERVICES)
    print(f"topics created; ACLs applied for {names}", file=sys.stderr)
    return 0


def _valid_tenant(tenant: str) -> bool:
    from contentmatch_shared.ids import InvalidId, check_tenant

    try:
        check_tenant(tenant)
    except InvalidId as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


def _platform_add(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from contentmatch_shared.kafka.security import add_platform, platform_principal
    from contentmatch_shared.settings import get_settings

    if not _valid_tenant(args.tenant):
        return 2
    password = asyncio.run(add_platform(get_settings(), args.tenant))
    principal = platform_principal(args.tenant)
    if args.password_file:
        fd = os.open(args.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        print(principal)
    else:
        print(f"{principal} {password}")
    print(
        f"{principal} may write to uploads.submitted only (SCRAM password set or rotated)",
        file=sys.stderr,
    )
    return 0


def _platform_remove(args: argparse.Namespace) -> int:
    import asyncio

    from contentmatch_shared.kafka.security import platform_principal, remove_platform
    from contentmatch_shared.settings import get_settings

    if not _valid_tenant(args.tenant):
        return 2
    deleted = asyncio.run(remove_platform(get_settings(), args.tenant))
    principal = platform_principal(args.tenant)
    print(f"{principal}: credentials deleted, {deleted} ACLs deleted", file=sys.stderr)
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
        "--keys", help="a saved GET /v1/reports/public-keys answer (offline; any key in it)"
    )
    verify.add_argument(
        "--url", default="http://127.0.0.1:8084", help="report service to fetch the keys from"
    )
    verify.set_defaults(func=_verify)
    keygen = report_sub.add_parser(
        "keygen", help="print a new signing key (private, public, key id) for a rotation"
    )
    keygen.set_defaults(func=_keygen)

    publish = sub.add_parser(
        "publish-upload",
        help="upload a file through a presigned URL and publish it on the uploads topic"
        " (platform key in CM_API_KEY, platform Kafka principal in CM_KAFKA_*)",
    )
    publish.add_argument("file")
    publish.add_argument("--url", default="http://127.0.0.1:8081", help="the ingest service")
    publish.add_argument("--external-id", default=None)
    publish.set_defaults(func=_publish_upload)

    again = sub.add_parser(
        "refingerprint-works",
        help="republish registered works so that the current signals fingerprint them again",
    )
    again.add_argument("--tenant", default=None, help="only this tenant's works")
    again.add_argument("--dry-run", action="store_true", help="list the works, publish nothing")
    again.set_defaults(func=_refingerprint)

    dlq = sub.add_parser("dlq", help="inspect and redrive dead letters")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = dlq_sub.add_parser("list", help="dead letters with origin, error, service, time")
    listing.add_argument("topic", nargs="?", help="one topic (origin or .dlq name); all if unset")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.set_defaults(func=_dlq)
    show = dlq_sub.add_parser("show", help="one dead letter: headers, redrives, value")
    show.add_argument("topic", help="origin topic or its .dlq")
    show.add_argument("offset", type=int, help="offset on the .dlq topic")
    show.set_defaults(func=_dlq)
    again_dlq = dlq_sub.add_parser("redrive", help="publish dead letters again on their origin")
    again_dlq.add_argument("topic", help="origin topic or its .dlq")
    chosen = again_dlq.add_mutually_exclusive_group()
    chosen.add_argument("--offsets", help="DLQ offsets N or N-M (inclusive)")
    chosen.add_argument("--all", action="store_true", help="every dead letter of the topic")
    again_dlq.add_argument(
        "--force", action="store_true", help="also those redriven before (sent again)"
    )
    again_dlq.add_argument("--dry-run", action="store_true", help="list, send nothing")
    again_dlq.set_defaults(func=_dlq)

    kafka = sub.add_parser("kafka", help="Kafka principals and ACLs (as the operator)")
    kafka_sub = kafka.add_subparsers(dest="kafka_command", required=True)
    bootstrap = kafka_sub.add_parser("bootstrap", help="create the topics and the services' ACLs")
    bootstrap.add_argument(
        "--scram-users",
        metavar="DIR",
        help="also set each service principal's SCRAM password from DIR/<principal>.password",
    )
    bootstrap.set_defaults(func=_kafka_bootstrap)

    platform = sub.add_parser("platform", help="platforms' Kafka principals (as the operator)")
    platform_sub = platform.add_subparsers(dest="platform_command", required=True)
    add = platform_sub.add_parser(
        "add", help="create or re-key a platform's principal: it may only produce uploads"
    )
    add.add_argument("tenant")
    add.add_argument("--password-file", help="write the password here (0600), not to stdout")
    add.set_defaults(func=_platform_add)
    remove = platform_sub.add_parser(
        "remove", help="revoke a platform's principal: its credentials and every ACL naming it"
    )
    remove.add_argument("tenant")
    remove.set_defaults(func=_platform_remove)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
