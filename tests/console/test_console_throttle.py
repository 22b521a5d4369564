"""The sign-in throttle: failures per address in a sliding window, the wait it answers, its bound."""

from __future__ import annotations

import pytest

from partner_gateway.console import throttle
from partner_gateway.console.throttle import WINDOW_SECONDS, SignInThrottle


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(throttle.time, "monotonic", lambda: now[0])
    return now


def test_an_address_past_the_limit_waits_until_its_oldest_failure_leaves_the_window(
    clock: list[float],
) -> None:
    limiter = SignInThrottle(3)
    for _ in range(3):
        assert limiter.retry_after("192.0.2.1") is None
        limiter.failed("192.0.2.1")
        clock[0] += 10
    assert limiter.retry_after("192.0.2.1") == int(WINDOW_SECONDS - 30) + 1
    assert limiter.retry_after("192.0.2.2") is None  # another address is not held back
    clock[0] = 1000.0 + WINDOW_SECONDS + 0.5  # the first failure has left the window
    assert limiter.retry_after("192.0.2.1") is None


def test_it_remembers_a_bounded_number_of_addresses(
    clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttle, "MAX_ADDRESSES", 2)
    limiter = SignInThrottle(1)
    for address in ("a", "b", "c"):
        limiter.failed(address)
    assert limiter.retry_after("a") is None  # forgotten, the oldest
    assert limiter.retry_after("b") is not None
    assert limiter.retry_after("c") is not None
