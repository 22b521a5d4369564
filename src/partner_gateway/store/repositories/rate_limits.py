"""Rate limits in the store: a company's own limits, and the counts API processes share.

`company_rate_limits` holds what an operator set for a company (NULL: the settings' default).
`rate_limit_usage` holds, per API process, company and traffic, the running count of requests the
process admitted (domain/rate_limits.py says how the others use it). Times are the processes'
clocks in milliseconds: keep them in sync (NTP); a reader looks back a few seconds further than
its last read, so small skews lose nothing (a count read twice is applied once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.rate_limits import Limit, PublishedCount, Traffic
from partner_gateway.store.bulk import Rows
from partner_gateway.store.tables import company_rate_limits, rate_limit_usage

FORGET_CHUNK = 1_000
"""Counts forgotten per statement: 2,000 parameters, well under both stores' bounds (32,767 on
PostgreSQL)."""


@dataclass(frozen=True, slots=True)
class CompanyLimits:
    """A company's own limits; None where the default applies."""

    sends: Limit | None = None
    reads: Limit | None = None

    def of(self, traffic: Traffic) -> Limit | None:
        return self.sends if traffic is Traffic.SENDS else self.reads


def _limit(per_second: float | None, burst: int | None) -> Limit | None:
    return None if per_second is None else Limit.of(per_second, burst)


async def all_overrides(connection: AsyncConnection) -> dict[str, CompanyLimits]:
    """Every company's own limits (rows with neither set are left out)."""
    c = company_rate_limits.c
    rows = await connection.execute(
        select(c.company_id, c.sends_per_second, c.sends_burst, c.reads_per_second, c.reads_burst)
    )
    found: dict[str, CompanyLimits] = {}
    for company_id, sends_rate, sends_burst, reads_rate, reads_burst in rows:
        limits = CompanyLimits(_limit(sends_rate, sends_burst), _limit(reads_rate, reads_burst))
        if limits.sends is not None or limits.reads is not None:
            found[company_id] = limits
    return found


async def overrides_of(connection: AsyncConnection, company_id: str) -> CompanyLimits:
    c = company_rate_limits.c
    row = (
        await connection.execute(
            select(c.sends_per_second, c.sends_burst, c.reads_per_second, c.reads_burst).where(
                c.company_id == company_id
            )
        )
    ).first()
    if row is None:
        return CompanyLimits()
    return CompanyLimits(_limit(row[0], row[1]), _limit(row[2], row[3]))


async def set_overrides(
    connection: AsyncConnection, company_id: str, limits: CompanyLimits, now: int
) -> None:
    """Store a company's own limits (None: back to the default); run in a write transaction."""
    values = {
        "company_id": company_id,
        "sends_per_second": limits.sends.per_second if limits.sends else None,
        "sends_burst": limits.sends.burst if limits.sends else None,
        "reads_per_second": limits.reads.per_second if limits.reads else None,
        "reads_burst": limits.reads.burst if limits.reads else None,
        "updated_at": now,
    }
    if limits.sends is None and limits.reads is None:
        await connection.execute(
            delete(company_rate_limits).where(company_rate_limits.c.company_id == company_id)
        )
        return
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(company_rate_limits).values(values)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=[company_rate_limits.c.company_id],
            set_={name: statement.excluded[name] for name in values if name != "company_id"},
        )
    )


def _upsert_counts(insert: Any) -> Rows:
    statement = insert(rate_limit_usage)
    return Rows(
        statement.on_conflict_do_update(
            index_elements=[
                rate_limit_usage.c.process_id,
                rate_limit_usage.c.company_id,
                rate_limit_usage.c.traffic,
            ],
            set_={"admitted": statement.excluded.admitted, "updated_at": statement.excluded.updated_at},
        ),
        ("process_id", "company_id", "traffic", "admitted", "updated_at"),
    )


_PUBLISH = {"postgresql": _upsert_counts(postgresql.insert), "sqlite": _upsert_counts(sqlite.insert)}
"""The counts' upsert per dialect, compiled once, run with the rows as tuples (store/bulk.py).
Measured (bench/limits_sync.py, a sync round on PostgreSQL): 10,000 companies' counts built as
dicts in multi-row statements took 1,974 ms a round, as tuples in one executemany 285 ms."""


async def publish(
    connection: AsyncConnection, process_id: str, counts: Sequence[tuple[str, Traffic, int]], now: int
) -> None:
    """Write this process's running counts (company, traffic, admitted), one upsert per count in
    one executemany."""
    await _PUBLISH[connection.dialect.name].execute(
        connection,
        [(process_id, company_id, traffic.value, admitted, now) for company_id, traffic, admitted in counts],
    )


async def others_since(connection: AsyncConnection, process_id: str, since: int) -> list[PublishedCount]:
    """The other processes' counts written after `since` (ms)."""
    c = rate_limit_usage.c
    rows = await connection.execute(
        select(c.process_id, c.company_id, c.traffic, c.admitted).where(
            c.updated_at > since, c.process_id != process_id
        )
    )
    return [(row[0], row[1], row[2], int(row[3])) for row in rows]


async def forget(connection: AsyncConnection, process_id: str, keys: Sequence[tuple[str, Traffic]]) -> None:
    """Remove this process's counts of the buckets it forgot (idle ones)."""
    c = rate_limit_usage.c
    for start in range(0, len(keys), FORGET_CHUNK):
        chunk = keys[start : start + FORGET_CHUNK]
        await connection.execute(
            delete(rate_limit_usage).where(
                c.process_id == process_id,
                tuple_(c.company_id, c.traffic).in_([(company, traffic.value) for company, traffic in chunk]),
            )
        )


async def release(connection: AsyncConnection, process_id: str) -> None:
    """Remove every count of this process (it stops)."""
    await connection.execute(delete(rate_limit_usage).where(rate_limit_usage.c.process_id == process_id))


async def sweep(connection: AsyncConnection, before: int) -> int:
    """Remove counts nobody has written since `before` (ms): processes that died."""
    result = await connection.execute(delete(rate_limit_usage).where(rate_limit_usage.c.updated_at < before))
    return result.rowcount
