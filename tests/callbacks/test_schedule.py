"""The real retry schedule's shape, as a pure function (tests run shorter ones)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.callbacks.schedule import ENDPOINT_FAILURES, RetrySchedule

REAL = RetrySchedule()
HOUR = 3_600_000


def test_the_documented_waits() -> None:
    waits = REAL.nominal_waits()
    assert waits[:11] == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert set(waits[10:]) == {3600}
    assert len(waits) + 1 == 34  # attempts in all
    assert 24 * 3600 <= sum(waits) <= 25.25 * 3600


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0, max_value=1, exclude_max=True))
def test_every_wait_is_within_its_jitter_and_the_first_within_10_s(failures: int, draw: float) -> None:
    delay = REAL.delay(failures, lambda: draw)
    nominal = min(5 * 2 ** (failures - 1), 3600)
    assert 0.75 * nominal <= delay <= 1.25 * nominal
    if failures == 1:
        assert delay <= 10


@given(st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=80, max_size=80))
def test_retried_for_at_least_24_hours_then_given_up(draws: list[float]) -> None:
    """Attempt after attempt, each failing: the last is 24 to 25¼ hours after the first."""
    start = attempted = 1_800_000_000_000
    failures = 0
    while True:
        failures += 1
        draw = draws[failures % len(draws)]
        following = REAL.after_failure(start, attempted, failures, lambda: draw)  # noqa: B023 - called at once
        if following is None:
            break
        assert following > attempted
        attempted = following
    assert 24 * HOUR <= attempted - start <= 24 * HOUR + 1.25 * HOUR
    assert 28 <= failures <= 50  # hourly waits of 45 to 75 minutes after the first 1 h 25 min


def test_an_endpoint_is_paused_after_failures_in_a_row_and_at_most_5_minutes() -> None:
    assert all(REAL.endpoint_pause(n, lambda: 0.5) == 0 for n in range(ENDPOINT_FAILURES))
    assert REAL.endpoint_pause(ENDPOINT_FAILURES, lambda: 0.5) == 5
    assert REAL.endpoint_pause(100, lambda: 0.999) <= 300 * 1.25
