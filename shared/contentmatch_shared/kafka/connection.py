"""Every Kafka client is built from these keyword arguments: one place for bootstrap servers,
security protocol and SASL/SCRAM credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from contentmatch_shared.settings import Settings


def kafka_password(settings: Settings) -> str:
    if settings.kafka_password:
        return settings.kafka_password
    if settings.kafka_password_file:
        return Path(settings.kafka_password_file).read_text().strip()
    return ""


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments every aiokafka client (producer, consumer, admin) takes alike."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol != "PLAINTEXT":
        kwargs |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_username,
            "sasl_plain_password": kafka_password(settings),
        }
    if settings.kafka_security_protocol == "SASL_SSL":
        from aiokafka.helpers import create_ssl_context

        kwargs["ssl_context"] = create_ssl_context()
    return kwargs


def producer_kwargs(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Idempotent, fully acknowledged writes unless the caller says otherwise."""
    return {
        **connection_kwargs(settings),
        "acks": "all",
        "enable_idempotence": True,
        **overrides,
    }


def consumer_kwargs(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {**connection_kwargs(settings), **overrides}


def admin_kwargs(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {**connection_kwargs(settings), **overrides}


def new_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**producer_kwargs(settings, **overrides))


def new_consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **consumer_kwargs(settings, **overrides))


def new_admin(settings: Settings, **overrides: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**admin_kwargs(settings, **overrides))
