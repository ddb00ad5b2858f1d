"""Credentials parsing, the bounded auth caches, token buckets and quotas, dependency errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import urllib3.exceptions

from contentmatch_shared.auth import parse_authorization
from contentmatch_shared.availability import DependencyTimeout, dependency_failure
from contentmatch_shared.bounded_cache import TtlLru
from contentmatch_shared.http import ApiError
from contentmatch_shared.identifiers import (
    InvalidMetadata,
    iso_territories,
    normalize_identifiers,
    normalize_territories,
)
from contentmatch_shared.rate_limits import DailyQuotas, Limit, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "unauthorized"),
        (b"", "unauthorized"),
        (b"Bearer ", "unauthorized"),
        ("Bearer clé".encode(), "malformed_credentials"),
        (b"Bearer \xff\xfe", "malformed_credentials"),
        (b"Basic dXNlcjpwYXNz", "malformed_credentials"),
        (b"Bearer " + b"k" * 600, "malformed_credentials"),
        (b"Bearer " + b"k" * 2000, "malformed_credentials"),
        (b"Bearer a\x01b", "malformed_credentials"),
    ],
)
def test_malformed_credentials_are_refused_with_401(header: bytes | None, code: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_authorization(header)
    assert (err.value.status, err.value.code) == (401, code)
    assert err.value.headers == {"WWW-Authenticate": "Bearer"}


def test_a_well_formed_bearer_gives_its_secret() -> None:
    assert parse_authorization(b"bearer  cm_plat_abc-_.~ ") == "cm_plat_abc-_.~"


def test_the_cache_is_bounded_and_forgets_after_its_ttl() -> None:
    clock = Clock()
    cache: TtlLru[int] = TtlLru(max_entries=3, ttl_s=10.0, clock=clock)
    for i in range(5):
        cache.put(f"k{i}", i)
    assert len(cache) == 3
    assert cache.get("k0") is None and cache.get("k4") == 4
    cache.get("k2")  # k2 is now the most recently used: k3 goes next
    cache.put("k5", 5)
    assert cache.get("k3") is None and cache.get("k2") == 2
    clock.now = 10.0
    assert cache.get("k2") is None


def test_a_token_bucket_allows_its_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(clock=clock)
    limit = Limit(rate_per_s=2.0, burst=3)
    assert [buckets.take("a", limit) for _ in range(3)] == [None, None, None]
    wait = buckets.take("a", limit)
    assert wait == pytest.approx(0.5)
    assert buckets.take("b", limit) is None  # another key has its own bucket
    clock.now = 0.5
    assert buckets.take("a", limit) is None
    assert buckets.take("a", limit) is not None
    assert buckets.take("a", Limit(rate_per_s=0.0, burst=1)) is None  # 0 = unlimited


def test_the_bucket_map_is_bounded() -> None:
    buckets = TokenBuckets(max_keys=10)
    for i in range(100):
        buckets.take(f"k{i}", Limit(1.0, 1))
    assert len(buckets._buckets) == 10


def test_a_daily_quota_resets_at_midnight_utc() -> None:
    now = datetime(2026, 1, 1, 23, 0, tzinfo=UTC)
    quotas = DailyQuotas(now=lambda: now)
    assert quotas.take("k", 2) is None and quotas.take("k", 2) is None
    assert quotas.take("k", 2) == pytest.approx(3600.0)
    now = datetime(2026, 1, 2, 0, 0, 1, tzinfo=UTC)
    assert quotas.take("k", 2) is None
    assert quotas.take("k", 0) is None


def test_dependency_errors_are_told_apart_from_bugs() -> None:
    assert dependency_failure(urllib3.exceptions.MaxRetryError(None, "/x")) == "S3"  # type: ignore[arg-type]
    assert dependency_failure(DependencyTimeout("Kafka", 1.0)) == "Kafka"
    assert dependency_failure(KeyError("x")) is None


@pytest.mark.parametrize(
    ("scheme", "value", "normalized"),
    [
        ("isrc", "us-rc1-76-07839", "USRC17607839"),
        ("iswc", "T-034.524.680-1", "T0345246801"),
        ("isni", "0000 0002 1825 0097", "0000000218250097"),
        ("isbn", "0-306-40615-2", "0306406152"),
        ("isbn", "978-0-306-40615-7", "9780306406157"),
        ("upc", "036000291452", "036000291452"),
        ("ean", "4006381333931", "4006381333931"),
        ("catalogue_no", "ABC 123/x", "ABC 123/x"),
    ],
)
def test_known_identifiers_are_checked_and_normalized(
    scheme: str, value: str, normalized: str
) -> None:
    assert normalize_identifiers({scheme: value}) == {scheme: normalized}


@pytest.mark.parametrize(
    ("identifiers", "code"),
    [
        ({"isrc": "USRC1760783"}, "invalid_identifier"),
        ({"iswc": "T-034.524.680-2"}, "invalid_identifier"),
        ({"isni": "0000000218250098"}, "invalid_identifier"),
        ({"isbn": "0306406153"}, "invalid_identifier"),
        ({"upc": "036000291453"}, "invalid_identifier"),
        ({"Bad Scheme!": "x"}, "invalid_identifier"),
        ({"x" * 40: "x"}, "invalid_identifier"),
        ({"label": "x" * 201}, "invalid_identifier"),
        ({"label": "a\nb"}, "invalid_identifier"),
        ({"ISRC": "USRC17607839", "isrc": "USRC17607839"}, "invalid_identifier"),
        ({f"k{i}": "v" for i in range(21)}, "too_many_identifiers"),
    ],
)
def test_bad_identifiers_are_refused(identifiers: dict[str, str], code: str) -> None:
    with pytest.raises(InvalidMetadata) as err:
        normalize_identifiers(identifiers)
    assert err.value.code == code


def test_territories_are_iso_3166_alpha_2() -> None:
    assert normalize_territories(["fr", "DE", "FR"]) == ["FR", "DE"]
    assert len(iso_territories()) == 249
    for bad in ("XX", "UK", "EU", "FRA", ""):
        with pytest.raises(InvalidMetadata) as err:
            normalize_territories([bad])
        assert err.value.code == "invalid_territory"
