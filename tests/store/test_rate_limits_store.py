"""The limits' tables (store/repositories/rate_limits.py), and two limiters sharing one store
through RateLimitSync as two API processes do."""

from __future__ import annotations

from partner_gateway.api.rate_limits.limiter import RateLimited, RateLimiter
from partner_gateway.api.rate_limits.sync import RateLimitSync
from partner_gateway.domain.rate_limits import Limit, Traffic
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import rate_limits as store
from partner_gateway.store.repositories.rate_limits import CompanyLimits
from support import Partner, make_partner

S, R = Traffic.SENDS, Traffic.READS


async def test_a_company_s_own_limits_are_kept_and_reset(runtime: Runtime, partner: Partner) -> None:
    async with runtime.database.write() as connection:
        assert await store.overrides_of(connection, partner.company_id) == CompanyLimits()
        await store.set_overrides(connection, partner.company_id, CompanyLimits(sends=Limit.of(7.5)), 1)
    async with runtime.database.write() as connection:
        assert await store.overrides_of(connection, partner.company_id) == CompanyLimits(sends=Limit(7.5, 15))
        await store.set_overrides(
            connection, partner.company_id, CompanyLimits(sends=Limit(7.5, 15), reads=Limit(0.5, 3)), 2
        )
        assert await store.all_overrides(connection) == {
            partner.company_id: CompanyLimits(sends=Limit(7.5, 15), reads=Limit(0.5, 3))
        }
        await store.set_overrides(connection, partner.company_id, CompanyLimits(), 3)
        assert await store.all_overrides(connection) == {}


async def test_counts_are_published_read_forgotten_and_swept(runtime: Runtime) -> None:
    async with runtime.database.write() as connection:
        await store.publish(connection, "p1", [("acme", S, 5), ("acme", R, 9)], 1_000)
        await store.publish(connection, "p2", [("acme", S, 3)], 2_000)
        await store.publish(connection, "p1", [("acme", S, 6)], 3_000)  # the same row, moved
    async with runtime.database.write() as connection:
        assert sorted(await store.others_since(connection, "p2", 0)) == [
            ("p1", "acme", "reads", 9),
            ("p1", "acme", "sends", 6),
        ]
        assert await store.others_since(connection, "p2", 2_000) == [("p1", "acme", "sends", 6)]
        assert await store.others_since(connection, "p1", 0) == [("p2", "acme", "sends", 3)]
        await store.forget(connection, "p1", [("acme", R)])
        assert await store.others_since(connection, "p2", 0) == [("p1", "acme", "sends", 6)]
        assert await store.sweep(connection, 2_500) == 1  # p2's, written at 2,000
        await store.release(connection, "p1")
        assert await store.others_since(connection, "nobody", 0) == []


async def test_many_counts_are_written_in_several_statements(runtime: Runtime) -> None:
    counts = [(f"cmp_{n:05d}", S, n) for n in range(2_500)]  # 12,500 parameters and more
    async with runtime.database.write() as connection:
        await store.publish(connection, "p1", counts, 1_000)
        assert len(await store.others_since(connection, "p2", 0)) == 2_500
        await store.forget(connection, "p1", [(company, traffic) for company, traffic, _ in counts[:2_400]])
        assert len(await store.others_since(connection, "p2", 0)) == 100


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def admit_all(limiter: RateLimiter, company_id: str, traffic: Traffic) -> int:
    admitted = 0
    try:
        while True:
            limiter.admit(company_id, traffic)
            admitted += 1
    except RateLimited:
        return admitted


async def test_two_processes_share_one_company_s_limit(runtime: Runtime, partner: Partner) -> None:
    other = await make_partner(runtime, "Globex")
    clock = Clock()
    limit = Limit.of(10, 20)
    limiters = [RateLimiter({S: limit, R: Limit.of(100)}, clock=clock) for _ in range(2)]
    first, second = (
        RateLimitSync(limiter, runtime.database, shared=True, process_id=name)
        for limiter, name in zip(limiters, ("api-1", "api-2"), strict=True)
    )
    await first.round()
    await second.round()
    assert admit_all(limiters[0], partner.company_id, S) == 20  # the whole burst, on one process
    await first.share()
    await second.share()
    assert admit_all(limiters[1], partner.company_id, S) == 0  # the other knows it is spent
    assert limiters[1].admit(other.company_id, S)  # another company is not
    assert limiters[1].admit(partner.company_id, R)  # nor the company's reads
    clock.now += 1.0  # 10 more, wherever they are spent
    assert admit_all(limiters[1], partner.company_id, S) == 10
    await second.share()
    await first.share()
    assert admit_all(limiters[0], partner.company_id, S) == 0
    clock.now += 0.5
    assert admit_all(limiters[0], partner.company_id, S) == 5


async def test_both_spending_at_once_is_paid_back_as_debt(runtime: Runtime, partner: Partner) -> None:
    clock = Clock()
    limiters = [RateLimiter({S: Limit.of(10, 20), R: Limit.of(100)}, clock=clock) for _ in range(2)]
    syncs = [
        RateLimitSync(limiter, runtime.database, shared=True, process_id=f"api-{n}")
        for n, limiter in enumerate(limiters)
    ]
    for sync in syncs:
        await sync.round()
    assert [admit_all(limiter, partner.company_id, S) for limiter in limiters] == [20, 20]  # before they hear
    for sync in syncs * 2:
        await sync.share()
    # each owes the other's 20: 0 - 20 = -20 tokens; 4 s of refill bring 20 more in all
    clock.now += 2.0
    assert [admit_all(limiter, partner.company_id, S) for limiter in limiters] == [0, 0]
    clock.now += 2.1
    first = admit_all(limiters[0], partner.company_id, S)
    for sync in syncs:
        await sync.share()
    assert first + admit_all(limiters[1], partner.company_id, S) <= 21


async def test_a_process_starting_late_owes_nothing_for_the_past(runtime: Runtime, partner: Partner) -> None:
    clock = Clock()
    early = RateLimiter({S: Limit.of(10, 20), R: Limit.of(100)}, clock=clock)
    late = RateLimiter({S: Limit.of(10, 20), R: Limit.of(100)}, clock=clock)
    early_sync = RateLimitSync(early, runtime.database, shared=True, process_id="early")
    await early_sync.round()
    admit_all(early, partner.company_id, S)
    await early_sync.share()
    clock.now += 60
    await RateLimitSync(late, runtime.database, shared=True, process_id="late").round()
    assert admit_all(late, partner.company_id, S) == 20


async def test_stopping_removes_the_process_s_counts(runtime: Runtime, partner: Partner) -> None:
    limiter = RateLimiter({S: Limit.of(10, 20), R: Limit.of(100)})
    sync = RateLimitSync(limiter, runtime.database, shared=True, process_id="leaving")
    await sync.start()
    limiter.admit(partner.company_id, S)
    await sync.share()
    async with runtime.database.read() as connection:
        assert await store.others_since(connection, "me", now_ms() - 60_000) != []
    await sync.stop()
    async with runtime.database.read() as connection:
        assert await store.others_since(connection, "me", 0) == []
