"""Every Kafka client gets its security settings from one factory."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from contentmatch_shared.kafka.connection import connection_kwargs, producer_kwargs
from contentmatch_shared.settings import Settings


def test_plaintext_carries_no_credentials() -> None:
    kwargs = connection_kwargs(Settings(kafka_bootstrap="k:1"))
    assert kwargs == {"bootstrap_servers": "k:1", "security_protocol": "PLAINTEXT"}


def test_scram_password_is_read_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "svc.password"
    secret.write_text("s3cret\n")
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="svc-ingest",
        kafka_password_file=str(secret),
    )
    kwargs = producer_kwargs(settings, linger_ms=5)
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "svc-ingest"
    assert kwargs["sasl_plain_password"] == "s3cret"
    assert (kwargs["acks"], kwargs["enable_idempotence"], kwargs["linger_ms"]) == ("all", True, 5)


def test_sasl_without_a_username_is_refused() -> None:
    with pytest.raises(ValidationError, match="CM_KAFKA_USERNAME"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT")


def test_no_client_is_built_outside_the_factory() -> None:
    """Clients built elsewhere would silently connect without credentials."""
    repo = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*repo.glob("services/*/contentmatch_*/**/*.py"), *repo.glob("shared/**/*.py")]:
        text = path.read_text()
        if path.name != "connection.py" and (
            "AIOKafkaProducer(" in text or "AIOKafkaConsumer(" in text or "AdminClient(" in text
        ):
            offenders.append(str(path.relative_to(repo)))
    assert offenders == []
