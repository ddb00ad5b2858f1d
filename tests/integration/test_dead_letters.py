"""`contentmatch dlq`: list, show and redrive dead letters against the real broker and S3."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from contentmatch_shared import cli
from contentmatch_shared.dead_letters import parse_offsets, read_dead_letters, redrive
from contentmatch_shared.events import Envelope, ObjectRef, UploadSubmitted
from contentmatch_shared.kafka.failures import PoisonRecord
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.kafka.runner import ConsumerRunner
from contentmatch_shared.settings import Settings, get_settings
from contentmatch_shared.storage import ObjectStore
from contentmatch_shared.topics import UPLOADS_SUBMITTED


async def _until(predicate: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _letters_until(settings: Settings, n: int) -> list[Any]:
    deadline = asyncio.get_running_loop().time() + 30
    while len(letters := await read_dead_letters(settings, "uploads.submitted")) < n:
        assert asyncio.get_running_loop().time() < deadline, f"{len(letters)} dead letters"
        await asyncio.sleep(0.2)
    return letters


def test_offsets_are_one_or_a_range() -> None:
    assert parse_offsets("7") == (7, 7)
    assert parse_offsets("3-9") == (3, 9)
    for bad in ("x", "9-3", "-1", "1-"):
        with pytest.raises(ValueError):
            parse_offsets(bad)


async def test_list_show_and_redrive_once_unless_forced(
    isolated: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await ObjectStore(isolated).ensure_buckets()
    producer = EventProducer(isolated, "test")
    await producer.start()
    refuse = {"upl_1", "upl_2", "upl_3"}
    handled: list[str] = []

    async def handle(envelope: Envelope[Any], record: ConsumerRecord) -> None:
        upload_id = envelope.payload.upload_id
        if upload_id in refuse:
            raise PoisonRecord(f"{upload_id} refused until the fix ships")
        handled.append(upload_id)

    runner = ConsumerRunner(
        isolated,
        service="test",
        group="dlq-test",
        topics=[UPLOADS_SUBMITTED],
        handler=handle,
        producer=producer,
    )
    await runner.start()
    task = asyncio.create_task(runner.run())
    topic = isolated.topic(UPLOADS_SUBMITTED.name)
    try:
        for i in range(4):
            payload = UploadSubmitted(
                upload_id=f"upl_{i}", tenant="tube", object=ObjectRef(bucket="b", key=f"k{i}")
            )
            await producer.publish(UPLOADS_SUBMITTED, f"upl_{i}", payload, correlation_id="t")
        await producer.raw.send_and_wait(topic, b"junk", key=b"junk", partition=0)

        letters = await _letters_until(isolated, 4)
        assert sorted(d.key for d in letters) == [b"junk", b"upl_1", b"upl_2", b"upl_3"]
        by_key = {d.key: d for d in letters}
        assert by_key[b"junk"].headers["failure"] == "poison"
        assert by_key[b"junk"].headers["error"].startswith("invalid:")
        assert by_key[b"upl_2"].headers["error"] == "poison: upl_2 refused until the fix ships"
        assert {d.headers["origin_topic"] for d in letters} == {topic}
        assert {d.headers["service"] for d in letters} == {"test"}
        assert all(not d.redriven for d in letters)
        assert sorted(handled) == ["upl_0"]

        refuse.clear()  # the fix shipped
        ordered = sorted(letters, key=lambda d: d.offset)
        first_two = (ordered[0].offset, ordered[1].offset)
        result = await redrive(isolated, "uploads.submitted", first=first_two[0], last=first_two[1])
        assert [d.offset for d in result.sent] == list(first_two)
        expected = sorted(["upl_0", *(d.key.decode() for d in ordered[:2] if d.key != b"junk")])
        await _until(lambda: sorted(handled) == expected)

        again = await redrive(isolated, "uploads.submitted", first=first_two[0], last=first_two[1])
        assert again.sent == [] and len(again.skipped) == 2

        rest = await redrive(isolated, "uploads.submitted.dlq")
        assert [d.offset for d in rest.sent] == [d.offset for d in ordered[2:]]
        await _until(lambda: sorted(handled) == ["upl_0", "upl_1", "upl_2", "upl_3"])
        # The junk is still junk: dead-lettered again, as a new dead letter.
        letters = await _letters_until(isolated, 5)
        assert [d.key for d in letters].count(b"junk") == 2
        assert sum(1 for d in letters if d.redriven) == 4

        forced = await redrive(
            isolated, "uploads.submitted", first=first_two[0], last=first_two[0], force=True
        )
        assert len(forced.sent) == 1
        await _until(lambda: len(handled) == 5)

        # The command line, as an operator runs it.
        for name, value in {
            "CM_KAFKA_BOOTSTRAP": isolated.kafka_bootstrap,
            "CM_KAFKA_SECURITY_PROTOCOL": isolated.kafka_security_protocol,
            "CM_KAFKA_USERNAME": isolated.kafka_username,
            "CM_KAFKA_PASSWORD_FILE": isolated.kafka_password_file,
            "CM_TOPIC_PREFIX": isolated.topic_prefix,
            "CM_S3_ENDPOINT": isolated.s3_endpoint,
            "CM_S3_ACCESS_KEY": isolated.s3_access_key,
            "CM_S3_SECRET_KEY": isolated.s3_secret_key,
            "CM_BUCKET_STATE": isolated.bucket_state,
        }.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            assert await asyncio.to_thread(cli.main, ["dlq", "list", "uploads.submitted"]) == 0
            out = capsys.readouterr()
            assert "5 dead letters" in out.err
            assert out.out.count("uploads.submitted.dlq@") == 5
            assert "redriven=2" in out.out
            offset = str(ordered[1].offset)
            argv = ["dlq", "show", "uploads.submitted", offset]
            assert await asyncio.to_thread(cli.main, argv) == 0
            shown = capsys.readouterr().out
            assert '"origin_topic"' in shown and '"upload_id"' in shown
            argv = ["dlq", "redrive", "uploads.submitted", "--offsets", f"0-{offset}"]
            assert await asyncio.to_thread(cli.main, argv) == 0
            assert "0 redrove, 2 skipped" in capsys.readouterr().err
        finally:
            get_settings.cache_clear()
    finally:
        runner.stop()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
