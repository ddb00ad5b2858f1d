"""Per-key token buckets and daily quotas, in process (so per replica: N replicas allow N times).

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; each request takes one.
A daily quota counts media submissions per key per UTC day. Both are held in bounded LRU maps, so
a key that has not been seen for a while simply starts again with a full bucket.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Limit:
    rate_per_s: float
    burst: int


class TokenBuckets:
    def __init__(
        self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def take(self, key: str, limit: Limit, *, only_look: bool = False) -> float | None:
        """Take a token: None when allowed, else the seconds until one is available.
        ``only_look`` answers the same without taking it."""
        if limit.rate_per_s <= 0:
            return None  # unlimited
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(limit.burst), now)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        bucket.tokens = min(
            float(limit.burst), bucket.tokens + (now - bucket.updated) * limit.rate_per_s
        )
        bucket.updated = now
        if bucket.tokens >= 1.0:
            if not only_look:
                bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / limit.rate_per_s


class DailyQuotas:
    def __init__(
        self, max_keys: int = 100_000, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._counts: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._max_keys = max_keys
        self._now = now

    def take(self, key: str, per_day: int) -> float | None:
        """Count one: None when within ``per_day`` (0 = unlimited), else seconds to midnight UTC."""
        if per_day <= 0:
            return None
        now = self._now()
        day = now.date().isoformat()
        seen_day, count = self._counts.get(key, (day, 0))
        if seen_day != day:
            count = 0
        if count >= per_day:
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            return max(1.0, (midnight - now).total_seconds())
        self._counts[key] = (day, count + 1)
        self._counts.move_to_end(key)
        while len(self._counts) > self._max_keys:
            self._counts.popitem(last=False)
        return None


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
