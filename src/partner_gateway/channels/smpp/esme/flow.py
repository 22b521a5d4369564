"""Pacing for an SMPP session: a throughput limiter, the throttling pause, reconnect back-off."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable


class RateLimiter:
    """Token bucket as a virtual schedule (GCRA): ``rate`` writes a second, bursts of ``burst``.

    Callers queue (FIFO) and each reserves its instant only when its turn comes, so a stalled
    event loop cannot release a pile of pre-booked slots at once: over any window of ``t`` seconds
    at most ``rate * t + burst`` callers pass.
    """

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] | None = None):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        # Default burst: 50 ms of traffic, at least one; absorbs event-loop timer jitter.
        burst = max(1.0, rate / 20) if burst is None else max(1.0, burst)
        self._tolerance = (burst - 1.0) * self._interval
        self._clock = clock
        self._tat = float("-inf")  # theoretical arrival time of the next caller
        self._turn = asyncio.Lock()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def reserve(self) -> float:
        """Take the next slot; returns how long to wait before using it."""
        now = self._now()
        at = max(now, self._tat - self._tolerance)
        self._tat = max(self._tat, at) + self._interval
        return at - now

    async def acquire(self) -> None:
        async with self._turn:
            delay = self.reserve()
            if delay > 0:
                await asyncio.sleep(delay)


class ThrottlePause:
    """After ESME_RTHROTTLED / ESME_RMSGQFUL: pause new submits, longer on each repeat.

    Throttled answers that arrive while a pause is running do not lengthen it (a full window of
    throttled answers counts once); a success resets the next pause to ``initial``.
    """

    def __init__(self, initial: float, maximum: float) -> None:
        self._initial = initial
        self._maximum = maximum
        self._next = initial
        self._until = 0.0

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    @property
    def remaining(self) -> float:
        return max(0.0, self._until - self._now())

    def throttled(self) -> float | None:
        """Start a pause unless one is running; returns its length (None when one was running)."""
        now = self._now()
        if now < self._until:
            return None
        delay = self._next
        self._until = now + delay
        self._next = min(self._maximum, delay * 2)
        return delay

    def succeeded(self) -> None:
        self._next = self._initial

    async def wait(self) -> None:
        # A deadline, not a condition: sleep to it (again if a new pause moved it).
        while (left := self.remaining) > 0:  # noqa: ASYNC110
            await asyncio.sleep(left)


def reconnect_delay(attempt: int, initial: float, maximum: float) -> float:
    """Exponential back-off with "equal jitter": between half and all of min(max, initial * 2**n)."""
    ceiling = min(maximum, initial * 2.0 ** min(attempt, 60))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret
