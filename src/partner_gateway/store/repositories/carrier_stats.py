"""What each worker sees of each SMPP carrier: one row per (carrier, worker), rewritten every
bind-lease renewal interval, read by `partner-gateway carriers`.

A worker that stops deletes its rows; one that dies leaves them, shown as stale once they are
older than three intervals, and deleted by any worker's next write an hour later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.timefmt import now_ms
from partner_gateway.store.database import Database
from partner_gateway.store.dialects import insert_ignoring_duplicates
from partner_gateway.store.tables import carrier_stats

FORGET_AFTER_MS = 3_600_000  # a dead worker's rows, kept this long for the operator to see


@dataclass(frozen=True, slots=True)
class CarrierSample:
    """One worker's view of one carrier, as it reports it."""

    carrier: str
    holder: str
    health: str
    binds_held: int
    binds_bound: int
    window: int
    in_flight: int
    submits_per_second: float
    receipts_per_second: float
    submits_total: int
    receipts_total: int
    last_error: str | None
    last_error_at: int | None


@dataclass(frozen=True, slots=True)
class CarrierRow:
    sample: CarrierSample
    updated_at: int


async def write(connection: AsyncConnection, sample: CarrierSample, now: int) -> None:
    """Replace this worker's row for the carrier (UPDATE, else INSERT), and forget old rows."""
    c = carrier_stats.c
    values = asdict(sample) | {"updated_at": now}
    changed = await connection.execute(
        update(carrier_stats).where(c.carrier == sample.carrier, c.holder == sample.holder).values(values)
    )
    if changed.rowcount == 0:
        await connection.execute(insert_ignoring_duplicates(connection.dialect.name, carrier_stats, values))
    await connection.execute(delete(carrier_stats).where(c.updated_at < now - FORGET_AFTER_MS))


async def forget(connection: AsyncConnection, carrier: str, holder: str) -> None:
    c = carrier_stats.c
    await connection.execute(delete(carrier_stats).where(c.carrier == carrier, c.holder == holder))


async def read_all(connection: AsyncConnection) -> list[CarrierRow]:
    c = carrier_stats.c
    rows = await connection.execute(select(carrier_stats).order_by(c.carrier, c.holder))
    names = [field for field in CarrierSample.__dataclass_fields__]
    return [CarrierRow(CarrierSample(**{n: row._mapping[n] for n in names}), row.updated_at) for row in rows]


def reported_up(rows: Sequence[CarrierRow], now: int, within_ms: int) -> set[str]:
    """The carriers some worker reported `up` within the last `within_ms`."""
    return {
        row.sample.carrier for row in rows if row.sample.health == "up" and now - row.updated_at <= within_ms
    }


class CarrierStatsStore:
    """The rows as a provider writes them: each call its own short transaction."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def write(self, sample: CarrierSample) -> None:
        async with self._database.write() as connection:
            await write(connection, sample, now_ms())

    async def forget(self, carrier: str, holder: str) -> None:
        async with self._database.write() as connection:
            await forget(connection, carrier, holder)

    async def read(self) -> Sequence[CarrierRow]:
        async with self._database.read() as connection:
            return await read_all(connection)

    async def up(self, within_ms: int) -> set[str]:
        return reported_up(await self.read(), now_ms(), within_ms)
