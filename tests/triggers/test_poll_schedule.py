"""The adaptive polling schedule: its bound, its cost, its arguments. Pure, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_seedance.polling import PollSchedule


def test_starts_at_the_poll_interval_and_grows_to_the_cap() -> None:
    schedule = PollSchedule(initial=5, maximum=60, growth=0.5, jitter=0)
    assert schedule.interval(0) == 5
    assert schedule.interval(10) == 10
    assert schedule.interval(60) == 35
    assert schedule.interval(110) == 60
    assert schedule.interval(10_000) == 60
    assert schedule.interval(-3) == 5  # clock skew between machines never shortens below the start


def test_documented_costs() -> None:
    schedule = PollSchedule(jitter=0)
    assert len(schedule.poll_times(300)) == 11
    assert len(schedule.poll_times(3600)) == 66
    assert len(PollSchedule(growth=0, jitter=0).poll_times(3600)) == 721


@settings(deadline=None, max_examples=200)
@given(
    duration=st.floats(min_value=0, max_value=10_000),
    initial=st.floats(min_value=0.5, max_value=100),
    growth=st.floats(min_value=0, max_value=3),
    extra=st.floats(min_value=0, max_value=1_000),
)
def test_a_finished_job_is_seen_within_the_latency_bound(
    duration: float, initial: float, growth: float, extra: float
) -> None:
    schedule = PollSchedule(initial=initial, maximum=initial + extra, growth=growth, jitter=0)
    seen_at = schedule.poll_times(duration)[-1]
    assert duration <= seen_at <= duration + schedule.interval(duration) + 1e-6 * max(1.0, duration)


@given(rand=st.floats(min_value=0, max_value=0.999999), elapsed=st.floats(min_value=0, max_value=1e6))
def test_jitter_only_shortens(rand: float, elapsed: float) -> None:
    schedule = PollSchedule(initial=2, maximum=30, growth=0.5, jitter=0.2)
    delay = schedule.next_delay(elapsed, rand=lambda: rand)
    assert 0.8 * schedule.interval(elapsed) - 1e-9 <= delay <= schedule.interval(elapsed)


def test_retry_after_lengthens_and_the_deadline_caps() -> None:
    schedule = PollSchedule(initial=1, maximum=10, growth=0, jitter=0)
    assert schedule.next_delay(0, retry_after=7) == 7
    assert schedule.next_delay(0, retry_after=0.2) == 1
    assert schedule.next_delay(0, retry_after=7, remaining=3) == 3
    assert schedule.next_delay(0, remaining=-5) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0}, "poll interval must be > 0"),
        ({"initial": 10, "maximum": 5}, "max poll interval"),
        ({"growth": -1}, "growth"),
        ({"jitter": 1}, "jitter"),
        ({"initial": float("nan")}, "finite"),
        ({"maximum": True}, "finite number"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PollSchedule(**kwargs)
