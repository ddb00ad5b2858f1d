"""Kafka principals against the real broker: SCRAM authentication and the ACLs of a platform
(it may only publish uploads) and of a service (it cannot mint principals)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from contentmatch_shared.kafka.connection import new_admin, new_consumer, new_producer
from contentmatch_shared.kafka.security import (
    add_platform,
    apply_service_acls,
    platform_principal,
    remove_platform,
)
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import (
    MEDIA_FAILED,
    REPORTS_CREATED,
    UPLOADS_MATCHED,
    UPLOADS_SUBMITTED,
    WORKS_REGISTRY,
)

if TYPE_CHECKING:
    from tests.support.infra import TestInfra


@pytest.fixture
async def platform(isolated: Settings) -> Settings:
    password = await add_platform(isolated, "tube")
    return isolated.model_copy(
        update={
            "kafka_username": platform_principal("tube"),
            "kafka_password": password,
            "kafka_password_file": "",
        }
    )


async def test_a_platform_may_publish_uploads_and_nothing_else(platform: Settings) -> None:
    producer = new_producer(platform, request_timeout_ms=5000)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            platform.topic(UPLOADS_SUBMITTED.name), b"{}", key=b"upl_1"
        )
        assert sent.offset >= 0
        for spec in (WORKS_REGISTRY, MEDIA_FAILED, UPLOADS_SUBMITTED.dlq):
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(platform.topic(spec.name), b"{}", key=b"wrk_1")
    finally:
        await producer.stop()


async def test_a_platform_may_not_consume(isolated: Settings, platform: Settings) -> None:
    grouped = new_consumer(platform, platform.topic(UPLOADS_SUBMITTED.name), group_id="tube-peek")
    with pytest.raises(GroupAuthorizationFailedError):
        try:
            await grouped.start()
            await grouped.getmany(timeout_ms=5000)
        finally:
            await grouped.stop()

    # Without a group: the broker refuses the fetch (aiokafka logs it and returns nothing, or
    # raises), though the operator has written a record there.
    operator = new_producer(isolated)
    await operator.start()
    try:
        for spec in (UPLOADS_SUBMITTED, WORKS_REGISTRY):
            await operator.send_and_wait(
                isolated.topic(spec.name), b"{}", key=b"wrk_1", partition=0
            )
    finally:
        await operator.stop()
    for spec in (UPLOADS_SUBMITTED, WORKS_REGISTRY):
        reader = new_consumer(platform, group_id=None, auto_offset_reset="earliest")
        await reader.start()
        read: list[object] = []
        try:
            reader.assign([TopicPartition(platform.topic(spec.name), 0)])
            for _ in range(6):
                batches = await reader.getmany(timeout_ms=500)
                read += [r for rs in batches.values() for r in rs]
        except TopicAuthorizationFailedError:
            pass
        finally:
            await reader.stop()
        assert read == [], spec.name


async def test_a_wrong_password_is_refused(platform: Settings) -> None:
    wrong = platform.model_copy(update={"kafka_password": "not-the-password"})
    producer = new_producer(wrong, request_timeout_ms=5000)
    with pytest.raises((KafkaConnectionError, KafkaError)):
        try:
            await producer.start()
        finally:
            await producer.stop()


async def test_a_service_principal_cannot_mint_principals(
    infra: TestInfra, isolated: Settings
) -> None:
    service = infra.settings("svc-ingest").model_copy(
        update={"topic_prefix": isolated.topic_prefix}
    )
    with pytest.raises(KafkaError):
        await add_platform(service, "intruder")
    # Nor see the topics of a stack with another prefix: its ACLs name the registry's topics.
    admin = new_admin(service)
    await admin.start()
    try:
        visible = await admin.list_topics()
    finally:
        await admin.close()
    assert not [t for t in visible if t.startswith(isolated.topic_prefix)]


async def test_the_broker_dates_uploads_a_publisher_cannot_backdate(
    isolated: Settings, platform: Settings
) -> None:
    """uploads.submitted uses LogAppendTime: upload tokens expire on the broker's clock."""
    topic = platform.topic(UPLOADS_SUBMITTED.name)
    producer = new_producer(platform)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topic, b"{}", key=b"upl_old", partition=0, timestamp_ms=1_000
        )
    finally:
        await producer.stop()
    reader = new_consumer(isolated, group_id=None, auto_offset_reset="earliest")
    await reader.start()
    try:
        tp = TopicPartition(topic, 0)
        reader.assign([tp])
        reader.seek(tp, sent.offset)
        (record,) = (await reader.getmany(tp, timeout_ms=10_000, max_records=1))[tp]
    finally:
        await reader.stop()
    assert record.timestamp_type == 1  # LogAppendTime
    assert abs(record.timestamp / 1000 - time.time()) < 120


async def test_a_service_writes_only_what_it_publishes(
    infra: TestInfra, isolated: Settings
) -> None:
    """A compromised report service cannot poison the registry or forge uploads."""
    await apply_service_acls(isolated)
    report = infra.settings("svc-report").model_copy(update={"topic_prefix": isolated.topic_prefix})
    producer = new_producer(report, request_timeout_ms=5000)
    await producer.start()
    try:
        await producer.send_and_wait(report.topic(REPORTS_CREATED.name), b"{}", key=b"upl_1")
        await producer.send_and_wait(report.topic(UPLOADS_MATCHED.dlq.name), b"{}", key=b"upl_1")
        for spec in (WORKS_REGISTRY, UPLOADS_SUBMITTED, UPLOADS_MATCHED):
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(report.topic(spec.name), b"{}", key=b"wrk_1")
    finally:
        await producer.stop()


async def test_a_removed_platform_can_no_longer_publish(isolated: Settings) -> None:
    password = await add_platform(isolated, "gone")
    gone = isolated.model_copy(
        update={
            "kafka_username": platform_principal("gone"),
            "kafka_password": password,
            "kafka_password_file": "",
        }
    )
    assert await remove_platform(isolated, "gone") == 2  # Write and Describe
    assert await remove_platform(isolated, "gone") == 0  # idempotent
    producer = new_producer(gone, request_timeout_ms=5000)
    with pytest.raises(KafkaError):
        try:
            await producer.start()
            await producer.send_and_wait(isolated.topic(UPLOADS_SUBMITTED.name), b"{}", key=b"k")
        finally:
            await producer.stop()
