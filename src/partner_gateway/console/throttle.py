"""Failed console sign-ins, counted per client address in the process.

Keys are 256 random bits, so guessing one is hopeless anyway; the limit keeps a client from
filling the logs and the store's read path with attempts. Each failure is answered after a second
(the form says so), and an address past `limit` failures in the window gets 429 until the oldest
of them leaves it. Per process: with several API processes an address gets `limit` in each.
"""

from __future__ import annotations

import time
from collections import deque

WINDOW_SECONDS = 300.0
FAILURE_DELAY_SECONDS = 1.0
MAX_ADDRESSES = 10_000  # the oldest address is forgotten past this, so memory stays bounded


class SignInThrottle:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.get(address)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - WINDOW_SECONDS:
            failures.popleft()
        if not failures:
            del self._failures[address]
        return failures

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it may now."""
        now = time.monotonic()
        failures = self._recent(address, now)
        if len(failures) < self._limit:
            return None
        return max(1, int(failures[0] + WINDOW_SECONDS - now) + 1)

    def failed(self, address: str) -> None:
        now = time.monotonic()
        failures = self._recent(address, now)
        if not failures:
            if len(self._failures) >= MAX_ADDRESSES:
                del self._failures[next(iter(self._failures))]
            self._failures[address] = failures
        failures.append(now)
