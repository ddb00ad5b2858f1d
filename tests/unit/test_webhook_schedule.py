"""The webhook retry schedule: exponential, capped, within a window of at least a day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contentmatch_delivery.schedule import RetrySchedule
from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import WEBHOOK_RETRIES

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_default_schedule_grows_then_caps_and_lasts_more_than_a_day() -> None:
    schedule = RetrySchedule.from_settings(Settings())
    plan = schedule.plan()
    assert plan[:7] == [10.0, 40.0, 160.0, 640.0, 2560.0, 10240.0, 21600.0]
    assert all(d == 21600.0 for d in plan[6:])
    assert sum(plan) >= 24 * 3600
    assert sum(plan) <= schedule.window_s


def test_next_attempt_stops_at_the_window() -> None:
    schedule = RetrySchedule(base_s=10, factor=4, max_delay_s=6 * 3600, window_s=24 * 3600)
    assert schedule.next_attempt(T0, T0, 1) == T0 + timedelta(seconds=10)
    late = T0 + timedelta(hours=23)
    assert schedule.next_attempt(T0, late, 9) is None  # 23 h + 6 h is past the day
    assert schedule.next_attempt(T0, T0 + timedelta(hours=17), 9) == T0 + timedelta(hours=23)


def test_retries_map_to_delay_topics_and_stay_on_the_last() -> None:
    assert [RetrySchedule.topic(n).name for n in (1, 2, 7)] == [
        "webhooks.retry.1",
        "webhooks.retry.2",
        "webhooks.retry.7",
    ]
    assert RetrySchedule.topic(50) == WEBHOOK_RETRIES[-1]


def test_huge_retry_numbers_do_not_overflow() -> None:
    schedule = RetrySchedule(base_s=1, factor=4, max_delay_s=60, window_s=10**9)
    assert schedule.delay_s(10_000) == 60


def test_with_the_defaults_each_level_holds_one_delay() -> None:
    """Records of a delay topic come due in order only if they share one delay."""
    schedule = RetrySchedule.from_settings(Settings())
    by_level: dict[str, set[float]] = {}
    for retry in range(1, len(schedule.plan()) + 1):
        by_level.setdefault(schedule.topic(retry).name, set()).add(schedule.delay_s(retry))
    assert all(len(delays) == 1 for delays in by_level.values())
