"""Schemathesis against each service's OpenAPI schema: no request it generates gets a 5xx.

Every operation gets a bounded number of generated requests that follow its schema and of
requests that break it, each sent with a key of a role that may call it and without a key.
"""

from __future__ import annotations

import contextlib
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.e2e.conftest import Tenants
from tests.support.stack import SERVICES, Stack

_EXAMPLES_PER_OPERATION = 12
# Which key calls an operation (the operator's, unless the route is another role's).
_CALLER = {"register_work": "label", "submit_upload": "tube"}


def _fuzz(
    operation: Any, mode: GenerationMode, base_url: str, key: str, failures: list[str]
) -> int:
    """Send generated requests for one operation; note each 5xx; return how many were sent."""
    session = requests.Session()
    sent = 0

    @hypothesis.settings(
        max_examples=_EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def run(case: Any) -> None:
        nonlocal sent
        for headers in ({"Authorization": key}, {}):
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=60)
            sent += 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} ({mode.value}, "
                    f"{'key' if headers else 'no key'}): {response.status_code} "
                    f"{response.text[:200]}"
                )

    with contextlib.suppress(Unsatisfiable):  # nothing in this operation can be made invalid
        run()
    return sent


@pytest.mark.parametrize("service", SERVICES)
def test_no_generated_request_gets_a_server_error(
    stack: Stack, tenants: Tenants, service: str
) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.url(service)}/openapi.json")
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        caller = _CALLER.get(operation.definition.raw.get("operationId"), "operator")
        key = getattr(tenants, caller)._http.headers["Authorization"]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            sent += _fuzz(operation, mode, stack.url(service), key, failures)
    print(f"{service}: {sent} generated requests, {len(failures)} server errors")
    assert not failures, "\n".join(failures[:20])
