"""Leases on SMPP bind slots: which worker may open bind k of carrier C.

A lease is one row per (carrier, slot). Taking it is one conditional UPDATE (the row is free when
its lease ran out, or already ours) and, for a slot never used, an INSERT that does nothing on a
conflict: both atomic on SQLite (one writer at a time) and on PostgreSQL (the UPDATE re-checks its
WHERE on the row a concurrent winner committed; the INSERT loses on the primary key). Times are
the workers' clocks, in milliseconds: keep them in sync (NTP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.timefmt import now_ms
from partner_gateway.store.database import Database
from partner_gateway.store.dialects import insert_ignoring_duplicates
from partner_gateway.store.tables import bind_slots


@dataclass(frozen=True, slots=True)
class BindSlot:
    carrier: str
    slot: int
    holder: str
    expires_at: int
    acquired_at: int


async def take(
    connection: AsyncConnection, carrier: str, slot: int, holder: str, now: int, lease_ms: int
) -> bool:
    """Take the lease on (carrier, slot) for `holder`, or renew it; True if `holder` holds it now."""
    c = bind_slots.c
    renewed = await connection.execute(
        update(bind_slots)
        .where(c.carrier == carrier, c.slot == slot, (c.expires_at < now) | (c.holder == holder))
        .values(
            holder=holder,
            expires_at=now + lease_ms,
            acquired_at=case((c.holder == holder, c.acquired_at), else_=now),
        )
    )
    if renewed.rowcount == 1:
        return True
    values = {"carrier": carrier, "slot": slot, "holder": holder, "expires_at": now + lease_ms}
    inserted = await connection.execute(
        insert_ignoring_duplicates(connection.dialect.name, bind_slots, values | {"acquired_at": now})
    )
    return inserted.rowcount == 1


async def free_slots(connection: AsyncConnection, carrier: str, binds: int, now: int) -> set[int]:
    """The slots 1..binds of `carrier` that no live lease holds."""
    c = bind_slots.c
    rows = await connection.execute(
        select(c.slot).where(c.carrier == carrier, c.slot <= binds, c.expires_at >= now)
    )
    return set(range(1, binds + 1)) - {row.slot for row in rows}


async def release(connection: AsyncConnection, carrier: str, holder: str) -> int:
    """Give up every lease `holder` has on `carrier`; how many there were."""
    c = bind_slots.c
    result = await connection.execute(delete(bind_slots).where(c.carrier == carrier, c.holder == holder))
    return result.rowcount


async def clear(connection: AsyncConnection, carrier: str) -> None:
    """Forget every lease on `carrier` (only for a process that is by definition the only worker)."""
    await connection.execute(delete(bind_slots).where(bind_slots.c.carrier == carrier))


async def leases(connection: AsyncConnection, carrier: str) -> list[BindSlot]:
    """Every lease row of `carrier` by slot, live or not: who holds which bind."""
    c = bind_slots.c
    rows = await connection.execute(select(bind_slots).where(c.carrier == carrier).order_by(c.slot))
    return [BindSlot(r.carrier, r.slot, r.holder, r.expires_at, r.acquired_at) for r in rows]


class BindSlotStore:
    """The leases as the SMPP provider uses them (`channels.smpp.bind_slots.SlotLeases`): each call
    its own short transaction, at the store's current time."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def take(self, carrier: str, slot: int, holder: str, lease_ms: int) -> bool:
        async with self._database.write() as connection:
            return await take(connection, carrier, slot, holder, now_ms(), lease_ms)

    async def free(self, carrier: str, binds: int) -> set[int]:
        async with self._database.read() as connection:
            return await free_slots(connection, carrier, binds, now_ms())

    async def release(self, carrier: str, holder: str) -> None:
        async with self._database.write() as connection:
            await release(connection, carrier, holder)

    async def clear(self, carrier: str) -> None:
        async with self._database.write() as connection:
            await clear(connection, carrier)

    async def holders(self, carrier: str) -> Sequence[BindSlot]:
        async with self._database.read() as connection:
            return await leases(connection, carrier)
