from __future__ import annotations

import pytest
from pydantic import ValidationError

from contentmatch_shared.settings import Settings


def test_production_refuses_default_secrets() -> None:
    with pytest.raises(ValidationError, match="CM_S3_SECRET_KEY"):
        Settings(environment="production", admin_key="x")
    with pytest.raises(ValidationError, match="CM_ADMIN_KEY"):
        Settings(environment="production", s3_secret_key="real")
    with pytest.raises(ValidationError, match="CM_KAFKA_SECURITY_PROTOCOL"):
        Settings(environment="production", s3_secret_key="real", admin_key="x")
    Settings(
        environment="production",
        s3_secret_key="real",
        admin_key="x",
        kafka_security_protocol="SASL_SSL",
        kafka_username="svc-ingest",
    )


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CM_KAFKA_BOOTSTRAP", "10.0.0.1:9092")
    monkeypatch.setenv("CM_MAX_UPLOAD_BYTES", "1234")
    settings = Settings()
    assert settings.kafka_bootstrap == "10.0.0.1:9092"
    assert settings.max_upload_bytes == 1234
    assert Settings(topic_prefix="t1.").topic("works.registry") == "t1.works.registry"
