"""Token buckets and the shared accounting between processes (domain/rate_limits.py), on a clock
the tests move by hand."""

from __future__ import annotations

import pytest

from partner_gateway.domain.rate_limits import Bucket, Limit, RemoteUsage, Traffic, parse_limit

TEN = Limit.of(10, 20)  # 10 a second, bursts of 20


def drain(bucket: Bucket, now: float) -> int:
    """How many requests the bucket admits at `now`, one after the other."""
    admitted = 0
    while bucket.take(now):
        admitted += 1
    return admitted


# (limit, first burst, seconds waited, admitted after the wait)
REFILLS: list[tuple[Limit, int, float, int]] = [
    (TEN, 20, 0.0, 0),  # empty: nothing until time passes
    (TEN, 20, 0.05, 0),  # half a token
    (TEN, 20, 0.1, 1),  # one token
    (TEN, 20, 0.55, 5),
    (TEN, 20, 2.0, 20),  # full again
    (TEN, 20, 60.0, 20),  # never more than the burst
    (Limit.of(100), 200, 1.0, 100),  # default burst: two seconds' worth
    (Limit.of(0.5, 1), 1, 1.0, 0),  # slower than one a second
    (Limit.of(0.5, 1), 1, 2.0, 1),
]


@pytest.mark.parametrize(("limit", "burst", "waited", "after"), REFILLS)
def test_burst_then_refill(limit: Limit, burst: int, waited: float, after: int) -> None:
    bucket = Bucket(limit, now=100.0)
    assert drain(bucket, 100.0) == burst
    assert drain(bucket, 100.0 + waited) == after


def test_admitted_counts_only_admissions() -> None:
    bucket = Bucket(TEN, 0.0)
    drain(bucket, 0.0)
    assert not bucket.take(0.0)
    assert bucket.admitted == 20


# (tokens taken, seconds later, remaining r, full in t, retry after)
HEADERS: list[tuple[int, float, int, int, int]] = [
    (1, 0.0, 19, 1, 1),  # 1 missing: 0.1 s to full, shown as 1 whole second
    (11, 0.0, 9, 2, 1),
    (20, 0.0, 0, 2, 1),  # empty: the next token in 0.1 s, Retry-After at least 1
    (20, 1.0, 10, 1, 1),
]


@pytest.mark.parametrize(("taken", "later", "remaining", "full_in", "retry_after"), HEADERS)
def test_what_the_headers_say(
    taken: int, later: float, remaining: int, full_in: int, retry_after: int
) -> None:
    bucket = Bucket(TEN, 0.0)
    for _ in range(taken):
        assert bucket.take(0.0)
    assert bucket.remaining(later) == remaining
    assert bucket.full_in() == full_in
    assert bucket.retry_after() == retry_after


def test_a_debit_can_run_into_debt_bounded_by_the_burst() -> None:
    bucket = Bucket(TEN, 0.0)
    bucket.debit(25, 0.0)  # others admitted 25 while this one held 20
    assert bucket.tokens == -5
    assert bucket.remaining(0.0) == 0
    assert bucket.retry_after() == 1  # (1 - -5) / 10 = 0.6 s
    assert drain(bucket, 0.5) == 0  # the debt is paid first
    assert drain(bucket, 0.6) == 1
    bucket.debit(10_000, 1.0)
    assert bucket.tokens == -20  # never below minus the burst: at most 2 bursts' wait
    assert bucket.retry_after() == 3


def test_a_new_limit_keeps_what_the_bucket_holds_up_to_its_burst() -> None:
    bucket = Bucket(TEN, 0.0)
    for _ in range(5):
        bucket.take(0.0)
    bucket.change(Limit.of(1, 3), 0.0)
    assert bucket.tokens == 3
    assert drain(bucket, 0.0) == 3
    assert drain(bucket, 1.0) == 1
    bucket.change(Limit.of(100, 200), 1.0)
    assert drain(bucket, 2.0) == 100


def test_idle_means_unused_and_full() -> None:
    bucket = Bucket(TEN, 0.0)
    bucket.take(0.0)
    assert not bucket.idle(30.0, 60.0)
    assert bucket.idle(60.0, 60.0)
    bucket.debit(20, 60.0)
    assert not bucket.idle(61.0, 60.0)  # in debt: forgetting it would forgive the debt


# (text, per second, burst, window) or (text, error)
PARSED: list[tuple[str, float, int, int]] = [
    ("100", 100.0, 200, 2),
    ("100/250", 100.0, 250, 2),  # 2.5 s rounds to 2
    ("100/100", 100.0, 100, 1),
    ("0.5/5", 0.5, 5, 10),
    ("0.2", 0.2, 1, 5),  # two seconds' worth is under one request: bursts of 1
    (" 7 / 3 ", 7.0, 3, 1),
]


@pytest.mark.parametrize(("text", "per_second", "burst", "window"), PARSED)
def test_parse_limit(text: str, per_second: float, burst: int, window: int) -> None:
    limit = parse_limit(text)
    assert (limit.per_second, limit.burst, limit.window) == (per_second, burst, window)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "not RATE or RATE/BURST"),
        ("fast", "not RATE or RATE/BURST"),
        ("0", "more than 0"),
        ("-5", "more than 0"),
        ("nan", "not RATE or RATE/BURST"),
        ("inf", "not RATE or RATE/BURST"),
        ("2000000", "at most"),
        ("10/0", "burst must be"),
        ("10/2.5", "whole number"),
        ("10/", "whole number"),
        ("10/-1", "whole number"),
    ],
)
def test_parse_limit_refuses(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_limit(text)


S, R = Traffic.SENDS, Traffic.READS

# Reads of the published counts, in order: (counts read, owed per (company, traffic))
USAGE: list[tuple[list[tuple[str, str, str, int]], dict[tuple[str, Traffic], int]]] = [
    ([("p2", "acme", "sends", 40)], {}),  # the first read is the baseline
    ([("p2", "acme", "sends", 40)], {}),  # read again (the look-back): nothing new
    ([("p2", "acme", "sends", 55), ("p2", "acme", "reads", 7)], {("acme", S): 15, ("acme", R): 7}),
    ([("p3", "acme", "sends", 5), ("p2", "globex", "sends", 3)], {("acme", S): 5, ("globex", S): 3}),
    ([("p2", "acme", "sends", 2)], {("acme", S): 2}),  # went down: p2 restarted that count
    ([("p2", "acme", "faxes", 9)], {}),  # a kind this version does not limit
]


def test_remote_usage_owes_the_growth_of_each_count() -> None:
    usage = RemoteUsage()
    for step, (counts, owed) in enumerate(USAGE):
        assert usage.deltas(counts, now=float(step)) == owed, step


def test_remote_usage_forgets_counts_that_stopped_moving() -> None:
    usage = RemoteUsage(forget_after=30)
    usage.deltas([], 0.0)
    assert usage.deltas([("p2", "acme", "sends", 10)], 1.0) == {("acme", S): 10}
    assert usage.deltas([], 20.0) == {}
    assert len(usage) == 1
    assert usage.deltas([], 40.0) == {}
    assert len(usage) == 0
    # a count first seen again after that is new (its publisher forgot it after 60 s)
    assert usage.deltas([("p2", "acme", "sends", 4)], 100.0) == {("acme", S): 4}


class SimulatedProcess:
    """One API process: its bucket for one company, what it published, what it read."""

    def __init__(self, name: str, limit: Limit) -> None:
        self.name = name
        self.bucket = Bucket(limit, 0.0)
        self.usage = RemoteUsage()
        self.admitted = 0


def simulate(
    shares: tuple[float, ...], offered_per_second: float, limit: Limit, seconds: float, sync: float
) -> int:
    """Requests admitted in `seconds` by processes that each get `share` of the offered load,
    publish their count every `sync` seconds and read the others' one period later (the worst
    lag of sync.py: written at the end of one period, read at the end of the next)."""
    processes = [SimulatedProcess(f"p{i}", limit) for i in range(len(shares))]
    table: dict[str, int] = {}
    published: list[tuple[float, str, int]] = []  # (visible from, process, count)
    step = 0.001
    credit = [0.0] * len(shares)
    next_sync = sync
    for process in processes:
        process.usage.deltas([], 0.0)  # each starts before the traffic does
    for tick in range(round(seconds / step)):
        now = tick * step
        for index, process in enumerate(processes):
            credit[index] += offered_per_second * shares[index] * step
            while credit[index] >= 1:
                credit[index] -= 1
                if process.bucket.take(now):
                    process.admitted += 1
        if now >= next_sync:
            next_sync += sync
            for process in processes:
                published.append((now + sync, process.name, process.bucket.admitted))
            for visible_from, name, count in published:
                if visible_from <= now:
                    table[name] = count
            for process in processes:
                counts = [
                    (name, "acme", "sends", count) for name, count in table.items() if name != process.name
                ]
                for (_, traffic), owed in process.usage.deltas(counts, now).items():
                    assert traffic is S
                    process.bucket.debit(owed, now)
    return sum(process.admitted for process in processes)


@pytest.mark.parametrize(
    "shares",
    [(1.0,), (0.5, 0.5), (0.9, 0.1), (1.0, 0.0), (0.25, 0.25, 0.25, 0.25)],
    ids=["one", "even", "skewed", "all-on-one", "four"],
)
@pytest.mark.parametrize("overload", [1.5, 3.0])
def test_processes_together_admit_the_limit_within_a_fifth(
    shares: tuple[float, ...], overload: float
) -> None:
    """The error bound of docs/operations.md: over 10 s of overload, the processes together
    admit what one bucket would (burst + rate x time) within 20 %, however the load is spread."""
    limit = Limit.of(100, 200)
    seconds = 10.0
    admitted = simulate(shares, limit.per_second * overload, limit, seconds, sync=0.5)
    single = limit.burst + limit.per_second * seconds
    assert abs(admitted - single) <= 0.2 * single, (admitted, single)
