from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from contentmatch_shared.client import ContentMatchClient, Endpoints
from tests.support.stack import Stack


@dataclass
class Tenants:
    """Keys for every role, two tenants each where isolation is tested."""

    operator: ContentMatchClient
    label: ContentMatchClient  # rightsholder "label"
    label_enforcement: ContentMatchClient
    rival: ContentMatchClient  # rightsholder "rival"
    rival_enforcement: ContentMatchClient
    ai_lab: ContentMatchClient  # rightsholder registering AI outputs
    tube: ContentMatchClient  # platform "tube"
    other_platform: ContentMatchClient


@pytest.fixture(scope="session")
def endpoints(stack: Stack) -> Endpoints:
    return Endpoints(
        ingest=stack.url("ingest"), report=stack.url("report"), delivery=stack.url("delivery")
    )


@pytest.fixture(scope="session")
def tenants(stack: Stack, endpoints: Endpoints) -> Iterator[Tenants]:
    operator = ContentMatchClient(stack.admin_key, endpoints)

    def client(role: str, tenant: str) -> ContentMatchClient:
        return ContentMatchClient(operator.create_key(role, tenant), endpoints)

    made = Tenants(
        operator=operator,
        label=client("rightsholder", "label"),
        label_enforcement=client("enforcement", "label"),
        rival=client("rightsholder", "rival"),
        rival_enforcement=client("enforcement", "rival"),
        ai_lab=client("rightsholder", "ai-lab"),
        tube=client("platform", "tube"),
        other_platform=client("platform", "vidshare"),
    )
    yield made
    for c in vars(made).values():
        c.close()
