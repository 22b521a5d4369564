"""Bind slot leases on the real store (SQLite, and PostgreSQL when the suite runs there)."""

from __future__ import annotations

import asyncio

from partner_gateway.runtime import Runtime
from partner_gateway.store import tables
from partner_gateway.store.repositories import bind_slots
from partner_gateway.store.repositories.bind_slots import BindSlotStore

LEASE = 30_000
T0 = 1_800_000_000_000


async def take(runtime: Runtime, slot: int, holder: str, now: int, carrier: str = "acme") -> bool:
    async with runtime.database.write() as connection:
        return await bind_slots.take(connection, carrier, slot, holder, now, LEASE)


async def rows(runtime: Runtime, carrier: str = "acme") -> list[tuple[int, str, int, int]]:
    async with runtime.database.read() as connection:
        found = await bind_slots.leases(connection, carrier)
    return [(row.slot, row.holder, row.expires_at, row.acquired_at) for row in found]


async def free(runtime: Runtime, now: int, binds: int = 3) -> set[int]:
    async with runtime.database.read() as connection:
        return await bind_slots.free_slots(connection, "acme", binds, now)


async def test_a_slot_is_held_by_one_worker_until_its_lease_runs_out(runtime: Runtime) -> None:
    assert await take(runtime, 1, "a", T0)
    assert not await take(runtime, 1, "b", T0 + 1)
    assert await take(runtime, 1, "a", T0 + 10_000)  # renewed: acquired_at stays
    assert await rows(runtime) == [(1, "a", T0 + 10_000 + LEASE, T0)]
    assert not await take(runtime, 1, "b", T0 + 10_000 + LEASE)  # runs out after, not at, expires_at
    assert await take(runtime, 1, "b", T0 + 10_001 + LEASE)
    assert await rows(runtime) == [(1, "b", T0 + 10_001 + 2 * LEASE, T0 + 10_001 + LEASE)]
    assert not await take(runtime, 1, "a", T0 + 10_002 + LEASE)  # the old holder cannot renew


async def test_slots_and_carriers_are_independent(runtime: Runtime) -> None:
    assert await take(runtime, 1, "a", T0)
    assert await take(runtime, 2, "b", T0)
    assert await take(runtime, 1, "b", T0, carrier="other")
    assert await free(runtime, T0) == {3}
    assert await free(runtime, T0 + LEASE + 1) == {1, 2, 3}
    assert await free(runtime, T0, binds=1) == set()


async def test_release_gives_up_only_the_holders_leases(runtime: Runtime) -> None:
    assert await take(runtime, 1, "a", T0)
    assert await take(runtime, 2, "b", T0)
    assert await take(runtime, 3, "a", T0, carrier="other")
    async with runtime.database.write() as connection:
        assert await bind_slots.release(connection, "acme", "a") == 1
    assert await free(runtime, T0) == {1, 3}
    assert [row[:2] for row in await rows(runtime, "other")] == [(3, "a")]
    assert await take(runtime, 1, "b", T0 + 1)  # at once, without waiting for the lease


async def test_clear_forgets_every_lease_of_a_carrier(runtime: Runtime) -> None:
    for slot, holder in ((1, "a"), (2, "b")):
        assert await take(runtime, slot, holder, T0)
    assert await take(runtime, 1, "a", T0, carrier="other")
    async with runtime.database.write() as connection:
        await bind_slots.clear(connection, "acme")
    assert await rows(runtime) == []
    assert len(await rows(runtime, "other")) == 1


async def test_concurrent_takers_of_one_slot_get_one_winner(runtime: Runtime) -> None:
    # On PostgreSQL these race on separate connections: first for a row not yet there (INSERT),
    # then for one whose lease ran out (UPDATE).
    store = BindSlotStore(runtime.database)
    for round_ in range(2):
        if round_:
            async with runtime.database.write() as connection:
                await connection.execute(tables.bind_slots.update().values(expires_at=0))
        results = await asyncio.gather(*(store.take("acme", 1, f"w{n}", LEASE) for n in range(8)))
        assert sum(results) == 1
        [(slot, holder, _, _)] = await rows(runtime)
        assert (slot, holder) == (1, f"w{results.index(True)}")
