"""Shared fixtures. Each layer is a marker (unit, integration, e2e, ops), set here from the folder
so that ``pytest -m unit`` etc. run one layer alone; infrastructure starts only when a selected
test needs it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from contentmatch_shared.settings import Settings
from tests.support.infra import TestInfra, infra_from_env
from tests.support.stack import Stack

_LAYERS = ("unit", "integration", "e2e", "ops")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for layer in _LAYERS:
            if layer in parts and not item.get_closest_marker(layer):
                item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def infra() -> Iterator[TestInfra]:
    """Real Kafka and S3 on test ports, fresh for the session."""
    running = infra_from_env()
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def settings(infra: TestInfra) -> Settings:
    """The operator's super user: integration tests create topics of their own prefix."""
    return infra.settings("admin")


def c2pa_anchor(state_dir: Path) -> Path:
    from tests.fixtures.c2pa_media import saved_chain

    saved_chain(state_dir / "c2pa")
    return state_dir / "c2pa" / "root.pem"


@pytest.fixture(scope="session")
def c2pa_chain(infra: TestInfra) -> object:
    """The chain whose root the e2e stack trusts as the operator's own anchor."""
    from tests.fixtures.c2pa_media import saved_chain

    return saved_chain(infra.state_dir / "c2pa")


@pytest.fixture(scope="session")
def stack(infra: TestInfra) -> Iterator[Stack]:
    """The four services as processes against the test infrastructure."""
    running = Stack(
        infra=infra,
        admin_key="cm_admin_" + secrets.token_urlsafe(16),
        base_port=int(os.environ.get("CM_TEST_BASE_PORT", "18080")),
        # C2PA: the stack trusts a test root made now (tests sign with its chain).
        env_overrides={"CM_C2PA_EXTRA_TRUST_ANCHORS_FILE": str(c2pa_anchor(infra.state_dir))},
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()
