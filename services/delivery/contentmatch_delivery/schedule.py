"""When a failed delivery is tried again: capped exponential backoff within a retry window.

Retry ``n`` (1-based) waits ``min(base * factor**(n-1), max_delay)`` and goes to delay topic
``webhooks.retry.<min(n, levels)>``; once the next attempt would fall past ``window`` after the
first one, the delivery has failed. With the defaults (10 s, x4, 6 h cap, 3 days) that is retries
after 10 s, 40 s, 2m40s, 10m40s, 42m40s, 2h50m, then every 6 h: 17 retries over 3 days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import WEBHOOK_RETRIES, TopicSpec


@dataclass(frozen=True)
class RetrySchedule:
    base_s: float
    factor: float
    max_delay_s: float
    window_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrySchedule:
        return cls(
            settings.webhook_retry_base_s,
            settings.webhook_retry_factor,
            settings.webhook_retry_max_delay_s,
            settings.webhook_retry_window_s,
        )

    def delay_s(self, retry: int) -> float:
        """How long retry number ``retry`` (1 = the first retry) waits after the failure."""
        exponent = max(retry - 1, 0)
        # Past the cap the power only grows: stop computing it before it overflows.
        if self.factor > 1 and exponent > 64:
            return self.max_delay_s
        return min(self.base_s * self.factor**exponent, self.max_delay_s)

    def next_attempt(
        self, first_attempt: datetime, failed_at: datetime, retry: int
    ) -> datetime | None:
        """When retry ``retry`` is due, or None once it would fall outside the window."""
        due = failed_at + timedelta(seconds=self.delay_s(retry))
        if due - first_attempt > timedelta(seconds=self.window_s):
            return None
        return due

    @staticmethod
    def topic(retry: int) -> TopicSpec:
        return WEBHOOK_RETRIES[min(max(retry, 1), len(WEBHOOK_RETRIES)) - 1]

    def plan(self) -> list[float]:
        """Every retry's delay until the window closes (for docs and tests)."""
        delays, elapsed, retry = [], 0.0, 1
        while elapsed + self.delay_s(retry) <= self.window_s:
            delays.append(self.delay_s(retry))
            elapsed += delays[-1]
            retry += 1
        return delays
