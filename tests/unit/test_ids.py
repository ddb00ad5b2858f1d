"""One id grammar for every entrance: URLs, events, object keys."""

from __future__ import annotations

import pytest

from contentmatch_shared.events import new_id
from contentmatch_shared.ids import InvalidId, check_id, check_tenant, is_id, is_tenant


def test_generated_ids_follow_the_grammar() -> None:
    for kind in ("upl", "wrk", "rep"):
        assert is_id(new_id(kind), kind)


@pytest.mark.parametrize(
    "value",
    [
        "upl_" + "0" * 31,
        "upl_" + "0" * 33,
        "upl_" + "A" * 32,
        "wrk_" + "0" * 32,  # another kind
        "upl_" + "0" * 30 + "/x",
        "../upl_" + "0" * 32,
        "upl_" + "0" * 32 + "\n",
        "",
        None,
        42,
    ],
)
def test_malformed_upload_ids_are_refused(value: object) -> None:
    assert not is_id(value, "upl")
    with pytest.raises(InvalidId):
        check_id(value, "upl")


@pytest.mark.parametrize("tenant", ["tube", "Vid.Share-2", "a", "x" * 200])
def test_tenants(tenant: str) -> None:
    assert check_tenant(tenant) == tenant


@pytest.mark.parametrize("tenant", ["", "a/b", "../x", ".hidden", "-x", "x" * 201, "tü", "a b"])
def test_bad_tenants(tenant: str) -> None:
    assert not is_tenant(tenant)
