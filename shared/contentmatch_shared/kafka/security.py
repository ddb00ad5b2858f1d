"""Kafka principals and ACLs: SCRAM users and the ACLs of the services and of platforms.

aiokafka's admin client has no call for either, so the two requests are sent as the protocol
defines them (AlterUserScramCredentials v0, CreateAcls v1). Both are idempotent: running
``contentmatch kafka bootstrap`` or ``contentmatch platform add`` twice changes nothing
(a second ``platform add`` rotates the password; ``platform remove`` revokes).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TypeAlias

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from contentmatch_shared.kafka.backlog import PIPELINE_GROUPS
from contentmatch_shared.kafka.connection import new_admin
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import (
    MATCH_PARTIALS,
    MEDIA_FAILED,
    REPORTS_CREATED,
    UPLOADS_FINGERPRINTED,
    UPLOADS_MATCHED,
    UPLOADS_SUBMITTED,
    WEBHOOK_DELIVERIES,
    WEBHOOK_RETRIES,
    WORKS_REGISTRY,
    WORKS_SUBMITTED,
    TopicSpec,
    all_specs,
)

SERVICES = ("ingest", "fingerprint", "match", "report", "delivery")
SCRAM_ITERATIONS = 8192  # Kafka's minimum is 4096


def service_principal(service: str) -> str:
    return f"svc-{service}"


def platform_principal(tenant: str) -> str:
    return f"platform-{tenant}"


class ResourceType(IntEnum):
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class PatternType(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10


_ANY = 1  # resource type, pattern type, operation and permission filters
_ALLOW = 3
_MECHANISMS = {"SCRAM-SHA-256": (1, "sha256"), "SCRAM-SHA-512": (2, "sha512")}


@dataclass(frozen=True)
class Acl:
    principal: str  # without "User:"
    resource: ResourceType
    name: str
    pattern: PatternType
    operation: Operation


class AlterUserScramCredentialsResponse_v0(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("tags", TaggedFields),
            ),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


_ScramStruct: TypeAlias = AlterUserScramCredentialsRequest_v0


class AlterUserScramCredentialsRequest(Request[_ScramStruct]):
    API_KEY = 51

    def __init__(
        self, deletions: list[tuple[str, int]], upsertions: list[tuple[str, int, int, bytes, bytes]]
    ) -> None:
        self._deletions = [(*d, {}) for d in deletions]
        self._upsertions = [(*u, {}) for u in upsertions]

    def build(self, request_struct_class: type[_ScramStruct]) -> _ScramStruct:
        return request_struct_class(self._deletions, self._upsertions, {})


def _raise_for(error_code: int, message: str | None, what: str) -> None:
    if error_code:
        raise for_code(error_code)(f"{what}: {message or ''}")


async def upsert_scram_user(
    admin: AIOKafkaAdminClient, name: str, password: str, mechanism: str = "SCRAM-SHA-512"
) -> None:
    """Create the user, or replace its password."""
    code, digest = _MECHANISMS[mechanism]
    salt = secrets.token_bytes(32)
    # RFC 5802's Hi() is PBKDF2 with the mechanism's HMAC; the broker stores only its output.
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, SCRAM_ITERATIONS)
    request = AlterUserScramCredentialsRequest([], [(name, code, SCRAM_ITERATIONS, salt, salted)])
    response = await admin._send_request(request)
    for user, error_code, message, _ in response.results:
        _raise_for(error_code, message, f"SCRAM credentials of {user}")


async def delete_scram_user(
    admin: AIOKafkaAdminClient, name: str, mechanism: str = "SCRAM-SHA-512"
) -> None:
    code, _ = _MECHANISMS[mechanism]
    response = await admin._send_request(AlterUserScramCredentialsRequest([(name, code)], []))
    for user, error_code, message, _ in response.results:
        if error_code != 91:  # RESOURCE_NOT_FOUND: already gone
            _raise_for(error_code, message, f"SCRAM credentials of {user}")


async def create_acls(admin: AIOKafkaAdminClient, acls: list[Acl]) -> None:
    """Allow each ACL (for any host). Creating an ACL that exists is a no-op."""
    for acl in acls:
        request = CreateAclsRequest(
            resource_type=acl.resource,
            resource_name=acl.name,
            resource_pattern_type_filter=acl.pattern,
            principal=f"User:{acl.principal}",
            host="*",
            operation=acl.operation,
            permission_type=_ALLOW,
        )
        response = await admin._send_request(request)
        for error_code, message in response.creation_responses:
            _raise_for(error_code, message, f"ACL {acl}")


@dataclass(frozen=True)
class Flows:
    reads: tuple[TopicSpec, ...]
    writes: tuple[TopicSpec, ...]


# What each service consumes and publishes: its principal may do that and no more.
SERVICE_FLOWS = {
    "ingest": Flows(
        reads=(UPLOADS_SUBMITTED, WORKS_REGISTRY, MEDIA_FAILED, UPLOADS_MATCHED, REPORTS_CREATED),
        writes=(WORKS_SUBMITTED, UPLOADS_SUBMITTED),
    ),
    "fingerprint": Flows(
        reads=(WORKS_SUBMITTED, UPLOADS_SUBMITTED),
        writes=(WORKS_REGISTRY, UPLOADS_FINGERPRINTED, MEDIA_FAILED),
    ),
    "match": Flows(
        reads=(WORKS_REGISTRY, UPLOADS_FINGERPRINTED, MATCH_PARTIALS),
        writes=(UPLOADS_MATCHED, MATCH_PARTIALS, MEDIA_FAILED),
    ),
    "report": Flows(reads=(UPLOADS_MATCHED,), writes=(REPORTS_CREATED,)),
    "delivery": Flows(
        reads=(
            UPLOADS_MATCHED,
            MEDIA_FAILED,
            REPORTS_CREATED,
            WEBHOOK_DELIVERIES,
            *WEBHOOK_RETRIES,
        ),
        writes=(WEBHOOK_DELIVERIES, *WEBHOOK_RETRIES),
    ),
}


def service_acls(settings: Settings, service: str) -> list[Acl]:
    """Read what the service consumes (and dead-letter it), write what it publishes, join its
    own groups; describe and create (at start, when missing) the registry's topics. It cannot
    create users or ACLs: only the operator's super user can."""
    principal = service_principal(service)
    flows = SERVICE_FLOWS[service]
    ops: dict[str, list[Operation]] = {}
    for spec in all_specs():
        ops[spec.name] = [Operation.DESCRIBE, Operation.CREATE]
    for spec in flows.reads:
        ops[spec.name].append(Operation.READ)
        ops[spec.dlq.name].append(Operation.WRITE)
    for spec in flows.writes:
        ops[spec.name].append(Operation.WRITE)
    acls = [
        Acl(principal, ResourceType.TOPIC, settings.topic(name), PatternType.LITERAL, op)
        for name, topic_ops in ops.items()
        for op in topic_ops
    ]
    acls += [
        Acl(principal, ResourceType.GROUP, service, PatternType.PREFIXED, op)
        for op in (Operation.READ, Operation.DESCRIBE)
    ]
    if service == "ingest":  # reads the pipeline's backlog (kafka/backlog.py) to push back
        acls += [
            # "match" by prefix: the groups of every shard split, and the merger's.
            Acl(principal, ResourceType.GROUP, group, pattern, Operation.DESCRIBE)
            for group in PIPELINE_GROUPS
            for pattern in [PatternType.PREFIXED if group == "match" else PatternType.LITERAL]
        ]
    return acls


def lag_reader_acls(settings: Settings, principal: str, groups: tuple[str, ...]) -> list[Acl]:
    """An autoscaler reading consumer lag (KEDA): describe the topics and the groups, no more."""
    acls = [
        Acl(principal, ResourceType.TOPIC, settings.topic(s.name), PatternType.LITERAL, op)
        for s in all_specs()
        for op in (Operation.DESCRIBE,)
    ]
    return acls + [
        Acl(principal, ResourceType.GROUP, g, PatternType.LITERAL, Operation.DESCRIBE)
        for g in groups
    ]


def platform_acls(settings: Settings, tenant: str) -> list[Acl]:
    """A platform may only publish on ``uploads.submitted`` (literal: not its dead letters)."""
    topic = settings.topic(UPLOADS_SUBMITTED.name)
    return [
        Acl(platform_principal(tenant), ResourceType.TOPIC, topic, PatternType.LITERAL, op)
        for op in (Operation.WRITE, Operation.DESCRIBE)
    ]


async def apply_service_acls(settings: Settings) -> None:
    """Run with the operator's super user (``contentmatch kafka bootstrap``)."""
    admin = new_admin(settings)
    await admin.start()
    try:
        for service in SERVICES:
            await create_acls(admin, service_acls(settings, service))
    finally:
        await admin.close()


async def ensure_service_users(settings: Settings, passwords: Path) -> list[str]:
    """Set the SCRAM password of every service principal that has a file in ``passwords``
    (``<principal>.password``): a service added after the broker's storage was formatted gets
    its principal here. Setting an unchanged password again is harmless."""
    admin = new_admin(settings)
    await admin.start()
    done: list[str] = []
    try:
        for service in SERVICES:
            principal = service_principal(service)
            path = passwords / f"{principal}.password"
            if path.is_file():
                password = path.read_text().strip()
                await upsert_scram_user(admin, principal, password, settings.kafka_sasl_mechanism)
                done.append(principal)
    finally:
        await admin.close()
    return done


async def add_platform(settings: Settings, tenant: str) -> str:
    """Create (or re-key) the platform's principal; returns its new password."""
    password = secrets.token_urlsafe(24)
    admin = new_admin(settings)
    await admin.start()
    try:
        await upsert_scram_user(
            admin, platform_principal(tenant), password, settings.kafka_sasl_mechanism
        )
        await create_acls(admin, platform_acls(settings, tenant))
    finally:
        await admin.close()
    await _wait_until_accepted(
        settings.model_copy(
            update={
                "kafka_username": platform_principal(tenant),
                "kafka_password": password,
                "kafka_password_file": "",
            }
        )
    )
    return password


async def _wait_until_accepted(settings: Settings, timeout_s: float = 20.0) -> None:
    """The broker applies new credentials from the metadata log a moment after the controller
    accepted them: return once they authenticate, so the caller can hand them out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        admin = new_admin(settings, request_timeout_ms=5000)
        try:
            await admin.start()
            return
        except KafkaError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)
        finally:
            await admin.close()


async def delete_acls_of(admin: AIOKafkaAdminClient, principal: str) -> int:
    """Delete every ACL naming ``principal``; how many were deleted."""
    request = DeleteAclsRequest(
        resource_type=_ANY,
        resource_name=None,  # type: ignore[arg-type] - a null filter matches any name
        resource_pattern_type_filter=_ANY,
        principal=f"User:{principal}",
        host=None,  # type: ignore[arg-type]
        operation=_ANY,
        permission_type=_ANY,
    )
    response = await admin._send_request(request)
    deleted = 0
    for error_code, message, matching in response.filter_responses:
        _raise_for(error_code, message, f"ACLs of {principal}")
        deleted += len(matching)
    return deleted


async def remove_platform(settings: Settings, tenant: str) -> int:
    """Revoke the platform's principal: its SCRAM credentials and every ACL naming it. Its
    open connections stay authenticated until they close (the broker re-checks ACLs on every
    request, so they can no longer write). Returns the number of ACLs deleted."""
    principal = platform_principal(tenant)
    admin = new_admin(settings)
    await admin.start()
    try:
        await delete_scram_user(admin, principal, settings.kafka_sasl_mechanism)
        return await delete_acls_of(admin, principal)
    finally:
        await admin.close()
