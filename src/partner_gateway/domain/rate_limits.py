"""Rate limits per company (SPEC §2): token buckets, and the consumption other processes report.

A company has two limits, one for its sends and one for its reads, each a rate per second and a
burst: a bucket holds up to `burst` tokens, gains `per_second` tokens a second, and a request is
admitted when it can take a whole token. The clock is passed in (`now`, monotonic seconds), so
these rules are pure and their tests sleep on nothing.

With several API processes a company's limit is its total across them (docs/operations.md, "Rate
limits"). Each process keeps its own bucket per company and class and periodically publishes how
many requests it admitted (a running count per bucket); it takes what the others admitted since it
last looked out of its own bucket (`Bucket.debit`). So every bucket sees the whole cluster's
consumption, a sync period late. A bucket may go into debt (down to minus its burst) when it learns
that others admitted more than it had: what the processes admitted together before they heard of
each other is paid back by refusing later, which keeps the total over a longer window at the limit.
`RemoteUsage` turns the published counts into what each bucket must be debited.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

MAX_PER_SECOND = 1_000_000.0
MAX_BURST = 100_000_000
BURST_SECONDS = 2.0
"""SPEC §2: bursts of up to two seconds' worth, unless a burst is given."""


class Traffic(StrEnum):
    """What a partner request counts against: the three send endpoints, or everything else."""

    SENDS = "sends"
    READS = "reads"


@dataclass(frozen=True, slots=True)
class Limit:
    """`per_second` requests a second on average, up to `burst` at once."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not (0 < self.per_second <= MAX_PER_SECOND) or math.isnan(self.per_second):
            raise ValueError(f"the rate must be more than 0 and at most {MAX_PER_SECOND:,.0f} per second")
        if not 1 <= self.burst <= MAX_BURST:
            raise ValueError(f"the burst must be a whole number from 1 to {MAX_BURST:,}")

    @classmethod
    def of(cls, per_second: float, burst: int | None = None) -> Limit:
        """The limit; with no burst, two seconds' worth (at least 1)."""
        if burst is None:
            burst = max(1, math.ceil(per_second * BURST_SECONDS)) if per_second > 0 else 1
        return cls(float(per_second), burst)

    @property
    def window(self) -> int:
        """Whole seconds in which `burst` requests are the rate's worth (at least 1): the `w` of
        the RateLimit-Policy header, whose `q` is the burst."""
        return max(1, round(self.burst / self.per_second))

    def __str__(self) -> str:
        rate = f"{self.per_second:g}"
        return f"{rate}/{self.burst}"


def parse_limit(text: str) -> Limit:
    """`RATE` or `RATE/BURST` (`100`, `100/250`, `0.5/5`) as a Limit; ValueError saying what is wrong."""
    rate_text, slash, burst_text = text.strip().partition("/")
    try:
        rate = float(rate_text)
    except ValueError:
        raise ValueError(f"{text!r} is not RATE or RATE/BURST (e.g. 100 or 100/200)") from None
    if not math.isfinite(rate):
        raise ValueError(f"{text!r} is not RATE or RATE/BURST (e.g. 100 or 100/200)")
    burst = None
    if slash:
        if not burst_text.strip().isdigit():
            raise ValueError(f"the burst in {text!r} must be a whole number")
        burst = int(burst_text)
    return Limit.of(rate, burst)


class Bucket:
    """One company's bucket for one kind of traffic, in one process.

    `tokens` may be fractional and may be negative (down to minus the burst) after a debit;
    `admitted` counts the requests this bucket admitted, ever: what the process publishes.
    """

    __slots__ = ("admitted", "limit", "stamp", "tokens", "used_at")

    def __init__(self, limit: Limit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.stamp = now
        self.admitted = 0
        self.used_at = now

    def _refill(self, now: float) -> None:
        elapsed = now - self.stamp
        if elapsed > 0:
            tokens = self.tokens + elapsed * self.limit.per_second
            burst = self.limit.burst
            self.tokens = burst if tokens > burst else tokens
            self.stamp = now

    def take(self, now: float) -> bool:
        """Admit one request if a whole token is there (and take it). `_refill` inlined: this
        runs on every partner request."""
        tokens = self.tokens
        elapsed = now - self.stamp
        if elapsed > 0:
            limit = self.limit
            tokens += elapsed * limit.per_second
            if tokens > limit.burst:
                tokens = limit.burst
            self.stamp = now
        self.used_at = now
        if tokens >= _WHOLE:
            self.tokens = tokens - 1
            self.admitted += 1
            return True
        self.tokens = tokens
        return False

    def debit(self, count: int, now: float) -> None:
        """Take what other processes admitted for this company out of this bucket; the debt is
        bounded by the burst, so a company is never shut out for longer than 2 bursts' worth."""
        self._refill(now)
        self.tokens = max(self.tokens - count, -float(self.limit.burst))

    def change(self, limit: Limit, now: float) -> None:
        """Apply a new limit: what the bucket holds stays, up to the new burst."""
        self._refill(now)
        self.limit = limit
        self.tokens = min(self.tokens, float(limit.burst))

    def remaining(self, now: float) -> int:
        """Whole requests that would be admitted now (the `r` of the RateLimit header)."""
        self._refill(now)
        return int(self.tokens) if self.tokens > 0 else 0

    def full_in(self) -> int:
        """Whole seconds until the bucket is full again, as of its last refill (the `t`)."""
        missing = self.limit.burst - self.tokens
        return math.ceil(missing / self.limit.per_second) if missing > 0 else 0

    def retry_after(self) -> int:
        """Whole seconds until a request can be admitted, at least 1 (SPEC §2's Retry-After)."""
        return max(1, math.ceil((1 - self.tokens) / self.limit.per_second))

    def idle(self, now: float, seconds: float) -> bool:
        """Unused for `seconds` and full: forgetting it changes nothing."""
        self._refill(now)
        return now - self.used_at >= seconds and self.tokens >= self.limit.burst


_WHOLE = 1 - 1e-9
"""A whole token, give or take the float error of a refill (100.1 - 100 is 0.0999...)."""

UsageKey = tuple[str, str, Traffic]
"""(process, company, traffic) of one published count."""

PublishedCount = tuple[str, str, str, int]
"""(process, company, traffic, admitted) as one process published it."""


class RemoteUsage:
    """What the other processes admitted, from their published running counts.

    A count is a running total per (process, company, traffic). What a bucket must be debited is
    the growth of each count since it was last read. The first read takes every count as it is
    (what processes admitted before this one started is not its business); a count first seen
    later is all new. A count that went down restarted (its process forgot an idle bucket): all of
    it is new. Counts unchanged for `forget_after` seconds are forgotten; a publisher forgets its
    idle buckets later than that (`Bucket.idle`), so a restarted count is always seen as new.
    """

    def __init__(self, forget_after: float = 30.0) -> None:
        self.forget_after = forget_after
        self._seen: dict[UsageKey, tuple[int, float]] = {}
        self._started = False

    def deltas(self, counts: Iterable[PublishedCount], now: float) -> dict[tuple[str, Traffic], int]:
        """How much each (company, traffic) must be debited for these counts, read at `now`."""
        owed: dict[tuple[str, Traffic], int] = {}
        seen = self._seen
        for process, company, traffic_name, admitted in counts:
            try:
                traffic = Traffic(traffic_name)
            except ValueError:
                continue  # a kind a newer version counts: not ours to apply
            key = (process, company, traffic)
            previous = seen.get(key)
            if previous is None:
                grew = admitted if self._started else 0
            elif admitted < previous[0]:
                grew = admitted
            else:
                grew = admitted - previous[0]
            if previous is None or grew:
                seen[key] = (admitted, now)
            if grew > 0:
                owed[(company, traffic)] = owed.get((company, traffic), 0) + grew
        self._started = True
        stale = [key for key, (_, at) in seen.items() if now - at > self.forget_after]
        for key in stale:
            del seen[key]
        return owed

    def __len__(self) -> int:
        return len(self._seen)
