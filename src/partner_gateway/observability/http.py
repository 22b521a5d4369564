"""HTTP requests by route template, method and status, with their durations.

This is the one metric on the look-up's path, so it is counted in plain dictionaries rather than
through prometheus_client's labelled children: a child's `labels()` look-up and its lock cost
about 2 µs per request for the counter and the histogram together, 3 % of a single look-up's
60 µs; a dictionary increment and a bisect cost a fraction of that. Every request runs on the
event loop's one thread, and a scrape renders on it too, so nothing here needs a lock. The
collector turns the dictionaries into the usual counter and histogram families when scraped.

Label values are bounded: the route is the template the request matched (never the path with its
ids), or "unmatched"; the method one of the few HTTP defines, or "other".
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds. From half a millisecond (a cached look-up answers in well under one) to ten seconds."""
UNMATCHED_ROUTE = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(slots=True)
class _Durations:
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0


@dataclass(slots=True)
class _Count:
    count: int
    durations: _Durations  # shared by the statuses of one method and route


class HttpMetrics(Collector):
    """`partner_gateway_http_requests_total{method,route,status}` and
    `partner_gateway_http_request_duration_seconds{method,route}`."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], _Count] = {}
        self._durations: dict[tuple[str, str], _Durations] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # One dictionary look-up once a route and status have been seen (measured: 0.6 µs a call).
        try:
            counted = self._counts[(method, route, status)]
        except KeyError:
            counted = self._first(method, route, status)
        counted.count += 1
        durations = counted.durations
        durations.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        durations.total += seconds

    def _first(self, method: str, route: str, status: int) -> _Count:
        """The entry of a method, route and status not seen before (another method: "other")."""
        label = method if method in METHODS else "other"
        counted = self._counts.get((label, route, status))
        if counted is None:
            counted = _Count(0, self._durations.setdefault((label, route), _Durations()))
            self._counts[(label, route, status)] = counted
        self._counts[(method, route, status)] = counted  # the same entry under the method as sent
        return counted

    def count(self, method: str, route: str, status: int) -> int:
        """Requests counted so far (for tests and the bench's checks)."""
        counted = self._counts.get((method, route, status))
        return counted.count if counted is not None else 0

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "partner_gateway_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels=("method", "route", "status"),
        )
        for (method, route, status), counted in list(self._counts.items()):
            if method in METHODS or method == "other":  # an unusual method's key is an alias
                requests.add_metric((method, route, str(status)), counted.count)
        yield requests
        durations = HistogramMetricFamily(
            "partner_gateway_http_request_duration_seconds",
            "Time from a request's arrival in the application to its answer's last byte handed to the server.",
            labels=("method", "route"),
        )
        for (method, route), seen in list(self._durations.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, DURATION_BUCKETS), "+Inf"), seen.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            durations.add_metric((method, route), buckets, seen.total)
        yield durations
