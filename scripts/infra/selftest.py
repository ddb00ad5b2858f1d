"""Checks a running Kafka + S3Proxy pair the way the services use them.

    python selftest.py write    # first start: create, write, read back
    python selftest.py verify   # after a restart: the data is still there

Run by selftest.sh, which starts both servers on their own ports and state dir.
Reads CM_STATE_DIR, CM_KAFKA_PORT, CM_S3_PORT, CM_S3_ACCESS_KEY and CM_S3_SECRET_KEY.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import random
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, KafkaTimeoutError, UnknownTopicOrPartitionError
from minio import Minio
from minio.error import S3Error

S3_ENDPOINT = f"127.0.0.1:{os.environ['CM_S3_PORT']}"
ACCESS_KEY = os.environ["CM_S3_ACCESS_KEY"]
SECRET_KEY = os.environ["CM_S3_SECRET_KEY"]
# The operator's SCRAM principal that kafka.sh generated.
KAFKA = {
    "bootstrap_servers": f"127.0.0.1:{os.environ['CM_KAFKA_PORT']}",
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": "admin",
    "sasl_plain_password": open(  # noqa: SIM115 - read once at import
        f"{os.environ['CM_STATE_DIR']}/kafka/users/admin.password"
    )
    .read()
    .strip(),
}

BUCKET = "selftest"
BIG_KEY = "media/big.bin"
# Above 2 parts of 10 MiB: the SDK must use a multipart upload, as the ingest service does.
BIG = random.Random(42).randbytes(21 * 1024 * 1024 + 17)
SMALL_KEYS = ["media/a.txt", "media/b.txt", "media/c/d.txt", "other/e.txt"]
TOPIC = "selftest.events"
MESSAGES = [f"event-{i}".encode() for i in range(10)]


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


def client(secret: str = SECRET_KEY, access: str = ACCESS_KEY) -> Minio:
    return Minio(S3_ENDPOINT, access_key=access, secret_key=secret, secure=False)


def read(s3: Minio, key: str) -> bytes:
    response = s3.get_object(BUCKET, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def s3_error_code(call) -> str | None:
    try:
        call()
    except S3Error as exc:
        return exc.code
    return None


def s3_write() -> None:
    print("s3: write")
    s3 = client()
    if not s3.bucket_exists(BUCKET):
        s3.make_bucket(BUCKET)
    check(s3.bucket_exists(BUCKET), "bucket exists")

    result = s3.put_object(BUCKET, BIG_KEY, io.BytesIO(BIG), length=-1, part_size=10 * 1024 * 1024)
    check(result.etag.endswith("-3"), f"unknown-length put went multipart (etag {result.etag})")
    check(read(s3, BIG_KEY) == BIG, "multipart object reads back identical")
    check(s3.stat_object(BUCKET, BIG_KEY).size == len(BIG), "stat size matches")

    for key in SMALL_KEYS:
        s3.put_object(BUCKET, key, io.BytesIO(key.encode()), len(key), content_type="text/plain")
    listed = [o.object_name for o in s3.list_objects(BUCKET, prefix="media/", recursive=True)]
    check(
        listed == ["media/a.txt", "media/b.txt", "media/big.bin", "media/c/d.txt"],
        f"list with prefix: {listed}",
    )
    after = [
        o.object_name
        for o in s3.list_objects(BUCKET, prefix="media/", recursive=True, start_after="media/b.txt")
    ]
    check(after == ["media/big.bin", "media/c/d.txt"], f"list with start_after: {after}")

    s3.remove_object(BUCKET, "media/a.txt")
    code = s3_error_code(lambda: s3.stat_object(BUCKET, "media/a.txt"))
    check(code == "NoSuchKey", f"removed object is gone ({code})")

    code = s3_error_code(lambda: client(secret="wrong-secret").list_buckets())
    check(code == "SignatureDoesNotMatch", f"wrong secret rejected ({code})")
    code = s3_error_code(lambda: client(access="nobody").make_bucket("selftest-intruder"))
    check(code == "InvalidAccessKeyId", f"unknown access key rejected ({code})")


def s3_verify() -> None:
    print("s3: verify after restart")
    s3 = client()
    check(
        hashlib.sha256(read(s3, BIG_KEY)).digest() == hashlib.sha256(BIG).digest(),
        "multipart object survived the restart",
    )
    listed = [o.object_name for o in s3.list_objects(BUCKET, recursive=True)]
    check(
        listed == ["media/b.txt", "media/big.bin", "media/c/d.txt", "other/e.txt"],
        f"listing survived the restart: {listed}",
    )


async def consume(group: str, expected: int, wait_s: float = 30.0) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        TOPIC,
        **KAFKA,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + wait_s
        while len(got) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            got += [m.value for msgs in batches.values() for m in msgs]
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


async def kafka_write() -> None:
    print("kafka: write")
    admin = AIOKafkaAdminClient(**KAFKA)
    await admin.start()
    try:
        if TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])
        check(TOPIC in await admin.list_topics(), "topic created through the admin client")
    finally:
        await admin.close()

    # Idempotent, acks=all: what the services' producers use.
    producer = AIOKafkaProducer(**KAFKA, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i, value in enumerate(MESSAGES):
            await producer.send_and_wait(TOPIC, value, key=str(i).encode())
    finally:
        await producer.stop()
    got = await consume("selftest-group", len(MESSAGES))
    check(sorted(got) == sorted(MESSAGES), f"consumed {len(got)} messages back")

    # auto.create.topics.enable=false: an unknown topic must not spring into existence.
    producer = AIOKafkaProducer(**KAFKA, request_timeout_ms=2000)
    await producer.start()
    try:
        await producer.send_and_wait("selftest.not-registered", b"x")
        created = True
    except (UnknownTopicOrPartitionError, KafkaTimeoutError):
        created = False
    finally:
        await producer.stop()
    check(not created, "topics are not auto-created")

    # SASL/SCRAM: a wrong password is refused.
    producer = AIOKafkaProducer(**{**KAFKA, "sasl_plain_password": "wrong"})
    try:
        await producer.start()
        refused = False
    except KafkaError:
        refused = True
    finally:
        await producer.stop()
    check(refused, "a wrong SCRAM password is refused")


async def kafka_verify() -> None:
    print("kafka: verify after restart")
    got = await consume("selftest-group", 0, wait_s=3.0)
    check(got == [], "committed offsets survived the restart (nothing to re-read)")
    got = await consume("selftest-fresh-group", len(MESSAGES))
    check(sorted(got) == sorted(MESSAGES), "messages survived the restart")


def main() -> int:
    # aiokafka warns about every metadata retry for the missing topic: expected here.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    phase = sys.argv[1] if len(sys.argv) > 1 else "write"
    if phase == "write":
        s3_write()
        asyncio.run(kafka_write())
    elif phase == "verify":
        s3_verify()
        asyncio.run(kafka_verify())
    else:
        print(f"unknown phase {phase!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
