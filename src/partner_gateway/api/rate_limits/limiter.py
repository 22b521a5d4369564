"""The process's rate limiter: a bucket per company and traffic, in memory; no I/O on a request.

`admit` runs on every partner request once its key is known: one dictionary look-up and a few
float operations, then the RateLimit headers as bytes (measured in docs/performance.md). The
companies' own limits and the other processes' consumption arrive from the store in the
background (sync.py), never on a request's path.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from math import ceil

from partner_gateway.api.problems import ProblemError
from partner_gateway.config import Settings
from partner_gateway.domain.rate_limits import Bucket, Limit, Traffic
from partner_gateway.store.repositories.rate_limits import CompanyLimits

Headers = Sequence[tuple[bytes, bytes]]
"""ASGI header pairs, names in lower case."""

NO_HEADERS: Headers = ()
IDLE_BUCKET_SECONDS = 60.0
"""A bucket unused this long, and full again, is forgotten (sync.py); longer than RemoteUsage's
30 s, so a count that restarts is never mistaken for an old one."""


def policy_field(traffic: Traffic, limit: Limit) -> bytes:
    """The RateLimit-Policy item (draft-ietf-httpapi-ratelimit-headers-11 §3): the burst as the
    quota `q`, in the `w` seconds that are its rate's worth."""
    return b'"%s";q=%d;w=%d' % (traffic.value.encode(), limit.burst, limit.window)


class _Bucket(Bucket):
    """A bucket with its policy header, made once per limit."""

    __slots__ = ("policy", "remaining_prefix", "traffic")

    def __init__(self, traffic: Traffic, limit: Limit, now: float) -> None:
        super().__init__(limit, now)
        self.traffic = traffic
        self.policy = policy_field(traffic, limit)
        self.remaining_prefix = b'"%s";r=' % traffic.value.encode()

    def change(self, limit: Limit, now: float) -> None:
        super().change(limit, now)
        self.policy = policy_field(self.traffic, limit)


class RateLimited(ProblemError):
    """429: the company's sends or reads are over their limit (SPEC §2)."""

    def __init__(self, traffic: Traffic, limit: Limit, retry_after: int, policy: bytes) -> None:
        noun = "sends" if traffic is Traffic.SENDS else "reads (look-ups, history, settings)"
        super().__init__(
            429,
            "rate-limited",
            f"Your company's {noun} are limited to {limit.per_second:g} per second, bursts of "
            f"{limit.burst}; retry after {retry_after} s. Nothing of this request was kept.",
            headers={
                "Retry-After": str(retry_after),
                "RateLimit-Policy": policy.decode(),
                "RateLimit": f'"{traffic.value}";r=0;t={retry_after}',
            },
        )
        self.traffic = traffic


class RateLimiter:
    """The buckets of one process, the default limits, and the companies' own."""

    def __init__(
        self,
        defaults: Mapping[Traffic, Limit],
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.clock = clock
        self._defaults = dict(defaults)
        self._overrides: dict[str, CompanyLimits] = {}
        self._buckets: dict[tuple[str, Traffic], _Bucket] = {}
        self.refused: Counter[tuple[str, Traffic]] = Counter()
        """Requests refused, by (company, traffic), since the process started: for metrics."""
        self.on_refused: list[Callable[[str, Traffic], None]] = []
        """Called with (company, traffic) for each refused request (a metrics hook)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(
            {traffic: settings.rate_limit(traffic) for traffic in Traffic},
            enabled=settings.rate_limit_enabled,
        )

    def limit_of(self, company_id: str, traffic: Traffic) -> Limit:
        own = self._overrides.get(company_id)
        limit = own.of(traffic) if own is not None else None
        return limit if limit is not None else self._defaults[traffic]

    def company_class(self, company_id: str) -> str:
        """ "own" for a company with limits of its own, else "default": a metric's bounded label."""
        return "own" if company_id in self._overrides else "default"

    def admit(self, company_id: str, traffic: Traffic) -> Headers:
        """Count one request of `company_id`: its RateLimit headers, or RateLimited (429)."""
        if not self.enabled:
            return NO_HEADERS
        now = self.clock()
        bucket = self._buckets.get((company_id, traffic))
        if bucket is None:
            bucket = self._bucket(company_id, traffic, now)
        if bucket.take(now):
            tokens = bucket.tokens
            limit = bucket.limit
            missing = limit.burst - tokens  # Bucket.full_in, inlined: every partner request
            full_in = ceil(missing / limit.per_second) if missing > 0 else 0
            return [
                (b"ratelimit-policy", bucket.policy),
                (b"ratelimit", bucket.remaining_prefix + b"%d;t=%d" % (tokens if tokens > 0 else 0, full_in)),
            ]
        self.refused[(company_id, traffic)] += 1
        for hook in self.on_refused:
            hook(company_id, traffic)
        raise RateLimited(traffic, bucket.limit, bucket.retry_after(), bucket.policy)

    def _bucket(self, company_id: str, traffic: Traffic, now: float) -> _Bucket:
        bucket = _Bucket(traffic, self.limit_of(company_id, traffic), now)
        self._buckets[(company_id, traffic)] = bucket
        return bucket

    # -- what sync.py does in the background --

    def set_overrides(self, overrides: dict[str, CompanyLimits]) -> None:
        """The companies' own limits as the store has them now; buckets take them at once."""
        self._overrides = overrides
        now = self.clock()
        for (company_id, traffic), bucket in self._buckets.items():
            wanted = self.limit_of(company_id, traffic)
            if wanted != bucket.limit:
                bucket.change(wanted, now)

    def debit(self, owed: Mapping[tuple[str, Traffic], int]) -> None:
        """Take what the other processes admitted out of the buckets (made if new)."""
        now = self.clock()
        for (company_id, traffic), count in owed.items():
            bucket = self._buckets.get((company_id, traffic))
            if bucket is None:
                bucket = self._bucket(company_id, traffic, now)
            bucket.debit(count, now)

    def counts(self) -> dict[tuple[str, Traffic], int]:
        """Every bucket's running count of admitted requests."""
        return {key: bucket.admitted for key, bucket in self._buckets.items()}

    def forget_idle(self, seconds: float = IDLE_BUCKET_SECONDS) -> list[tuple[str, Traffic]]:
        """Drop the buckets unused for `seconds` and full again; their keys."""
        now = self.clock()
        idle = [key for key, bucket in self._buckets.items() if bucket.idle(now, seconds)]
        for key in idle:
            del self._buckets[key]
        return idle

    def bucket(self, company_id: str, traffic: Traffic) -> Bucket | None:
        """The bucket as it is (for tests and the operator's view), or None."""
        return self._buckets.get((company_id, traffic))

    def __len__(self) -> int:
        return len(self._buckets)
