"""When to try a request again, and after how long.

A request is tried again when trying it cannot do harm twice:

- no connection was made (refused, DNS, connect timeout): the gateway never saw it;
- 429: the gateway kept nothing of it (docs/api.md, rate limits);
- 408, 409, 5xx, a read timeout or a dropped connection, only for a call that is safe to repeat:
  every read, and every send, since each send carries an `Idempotency-Key` that the gateway
  answers a repeat of with the first answer and sends nothing. A callback-settings `PUT` is not
  (its answer may be the only one that ever shows a new secret), so it is tried again only in
  the first two cases.

The wait: the answer's `Retry-After` when it has one (a 429 always does, a 5xx of the gateway
too), unless that is longer than `max_retry_after`, when the error is raised at once rather than
the caller held for minutes; otherwise exponential backoff from `initial_delay` doubling up to
`max_delay`, less up to 25 % jitter so many clients do not retry in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx

from partner_gateway_sdk.errors import parse_retry_after

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how patiently a call is tried again (`max_retries=0`: never)."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    statuses: frozenset[int] = field(default=RETRYABLE_STATUSES)

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise ValueError("max_retries >= 0 and 0 <= initial_delay <= max_delay, please")

    def backoff(self, retry: int) -> float:
        """The wait before retry number `retry` (0 for the first) when the answer named none."""
        delay: float = min(self.initial_delay * 2.0**retry, self.max_delay)
        return delay * (1.0 - 0.25 * random.random())  # noqa: S311 - jitter, not a secret

    def after_response(self, retry: int, response: httpx.Response, repeatable: bool) -> float | None:
        """Seconds to wait before trying again after this answer, or None to give up."""
        status = response.status_code
        if retry >= self.max_retries or status not in self.statuses:
            return None
        if status != 429 and not repeatable:
            return None
        asked = parse_retry_after(response.headers.get("retry-after"))
        if asked is None:
            return self.backoff(retry)
        if asked > self.max_retry_after:
            return None
        return asked

    def after_error(self, retry: int, error: httpx.TransportError, repeatable: bool) -> float | None:
        """Seconds to wait before trying again after no answer, or None to give up."""
        if retry >= self.max_retries:
            return None
        never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        if never_sent or repeatable:
            return self.backoff(retry)
        return None
