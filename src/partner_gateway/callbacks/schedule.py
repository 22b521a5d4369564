"""When a failed callback is tried again, and when it is given up (SPEC §5): a pure function.

After the n-th failed attempt an event waits `first × 2^(n-1)` seconds, at most `max_delay`,
times a jitter factor drawn uniformly from [1 - jitter, 1 + jitter] (so the events of one
outage do not come back in step). An attempt that fails once `window` has passed since the
event became pending (made, or replayed) is the last: the event is given up. So the last
attempt is at least `window` after the first, and at most `window + max_delay × (1 + jitter)`.

With the defaults (5 s, doubling, 1 hour at most, 24 hours, ±25 %) the waits are 5 s, 10 s,
20 s, 40 s, 80 s, 160 s, 320 s, 640 s, 1280 s, 2560 s, then hourly: 11 attempts in the first
1 h 25 min, 34 or so in all, the last between 24 and 25¼ hours after the first.

An endpoint that keeps failing is backed off as a whole (`endpoint_pause`): after
`ENDPOINT_FAILURES` failures in a row its other events are put off, not tried, until the pause
ends; then one attempt at a time probes it until one succeeds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

ENDPOINT_FAILURES = 3
"""Failures in a row after which an endpoint is paused as a whole."""
ENDPOINT_MAX_PAUSE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    first: float = 5.0
    """Seconds before the first retry (times the jitter: at most 6.25 s by default)."""
    max_delay: float = 3600.0
    window: float = 86400.0
    """Seconds after which a failed attempt is the last one."""
    jitter: float = 0.25

    def delay(self, failures: int, draw: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the `failures`-th failed attempt in a row (1, 2, ...)."""
        nominal = min(self.first * 2.0 ** min(failures - 1, 64), self.max_delay)
        return nominal * (1.0 - self.jitter + 2.0 * self.jitter * draw())

    def after_failure(
        self, pending_since: int, attempted_at: int, failures: int, draw: Callable[[], float] = random.random
    ) -> int | None:
        """The time (epoch ms) of the next attempt after a failed one, or None: given up."""
        if attempted_at - pending_since >= self.window * 1000:
            return None
        return attempted_at + round(self.delay(failures, draw) * 1000)

    def nominal_waits(self) -> list[float]:
        """The waits without jitter, from the first failure to the last attempt (for the docs)."""
        waits: list[float] = []
        elapsed = 0.0
        while elapsed < self.window:
            wait = min(self.first * 2.0 ** min(len(waits), 64), self.max_delay)
            waits.append(wait)
            elapsed += wait
        return waits

    def endpoint_pause(self, failures: int, draw: Callable[[], float] = random.random) -> float:
        """Seconds an endpoint is left alone after `failures` failures in a row (0: not paused)."""
        if failures < ENDPOINT_FAILURES:
            return 0.0
        cap = min(self.max_delay, ENDPOINT_MAX_PAUSE_SECONDS)
        nominal = min(self.first * 2.0 ** min(failures - ENDPOINT_FAILURES, 64), cap)
        return nominal * (1.0 - self.jitter + 2.0 * self.jitter * draw())
