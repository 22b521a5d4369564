"""The aggregates of GET /messages/stats, kept as statuses change.

`message_stats` counts a company's messages per channel, hour of acceptance (UTC), current status
and error code; `message_latency` counts, per channel and hour, the messages that became final by
how long after acceptance, in logarithmic bins. A batch's changes are summed in memory
(`StatsDelta`) and written in one multi-row upsert per table, in the batch's transaction: the
counts move with the statuses, or neither does. Reading a month by day then sums a few thousand
rows instead of scanning a million messages.

Shards: on PostgreSQL a transaction's upsert holds its rows' locks until it commits, and every
transaction counting a company's busy hour touches the same rows, so concurrent writers (an API
process and workers, or one process's send and receipt batches) queued on those locks: sampled
during an API + two workers run, nearly every waiting backend waited there. Each write picks one
of STATS_SHARDS shards at random, a part of every row's key; two concurrent writes meet with a
chance of 1 in STATS_SHARDS, and a read sums up to that many more rows. SQLite has one writer
at a time anyway: its rows stay in shard 0.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.store.commit_hooks import write_last
from partner_gateway.store.tables import message_latency, message_stats

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
BINS_PER_DOUBLING = 4
"""Latency bins' width: a bin's upper bound is 2**(1/4), about 19 %, above the one below it."""
_UPSERT_ROWS = 1000  # a statement's rows: within PostgreSQL's 32767 parameters
STATS_SHARDS = 8


def hour_of(epoch_ms: int) -> int:
    """The start of the UTC hour holding `epoch_ms`."""
    return epoch_ms - epoch_ms % HOUR_MS


def latency_bin(latency_ms: int) -> int:
    """The bin of a latency: the smallest n with latency <= 2**(n/4) ms (0 for 1 ms or less)."""
    if latency_ms <= 1:
        return 0
    n = math.ceil(BINS_PER_DOUBLING * math.log2(latency_ms))
    while n > 0 and 2 ** ((n - 1) / BINS_PER_DOUBLING) >= latency_ms:  # floating point's edge
        n -= 1
    return n


def bin_upper_ms(bin_: int) -> int:
    """A bin's upper bound in whole ms: what a percentile falling in it is reported as."""
    return math.ceil(2 ** (bin_ / BINS_PER_DOUBLING))


def percentile_ms(bins: dict[int, int], fraction: float) -> int | None:
    """The upper bound of the bin holding the `fraction` quantile (nearest rank), None when empty."""
    total = sum(bins.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for bin_ in sorted(bins):
        seen += bins[bin_]
        if seen >= rank:
            return bin_upper_ms(bin_)
    raise AssertionError("unreachable: the ranks add up to the total")


StatsKey = tuple[str, str, int, str, str]  # company, channel, hour, status, error code ('' none)
LatencyKey = tuple[str, str, int, int]  # company, channel, hour, bin


@dataclass(slots=True)
class StatsDelta:
    """A batch's changes to the aggregates, summed before they are written."""

    counts: dict[StatsKey, int] = field(default_factory=dict)
    latencies: dict[LatencyKey, int] = field(default_factory=dict)

    def count(
        self, company_id: str, channel: str, created_at: int, status: str, error_code: str | None, by: int
    ) -> None:
        key = (company_id, channel, hour_of(created_at), status, error_code or "")
        self.counts[key] = self.counts.get(key, 0) + by

    def move(
        self,
        company_id: str,
        channel: str,
        created_at: int,
        old: tuple[str, str | None],
        new: tuple[str, str | None],
    ) -> None:
        """A message from its old (status, error code) row to its new one."""
        if (old[0], old[1] or "") != (new[0], new[1] or ""):
            self.count(company_id, channel, created_at, old[0], old[1], -1)
            self.count(company_id, channel, created_at, new[0], new[1], 1)

    def became_final(self, company_id: str, channel: str, created_at: int, now: int) -> None:
        key = (company_id, channel, hour_of(created_at), latency_bin(now - created_at))
        self.latencies[key] = self.latencies.get(key, 0) + 1

    async def write(self, connection: AsyncConnection) -> None:
        """In a `Database.write` transaction: gathered, and written with the transaction's other
        deltas as its last statements (store/database.py `write_last`). Otherwise now."""
        if write_last(connection, _write_gathered, StatsDelta(dict(self.counts), dict(self.latencies))):
            self.counts.clear()
            self.latencies.clear()
            return
        await self.write_now(connection)

    def add(self, other: StatsDelta) -> None:
        for key, by in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + by
        for lkey, n in other.latencies.items():
            self.latencies[lkey] = self.latencies.get(lkey, 0) + n

    async def write_now(self, connection: AsyncConnection) -> None:
        """One upsert per table (per thousand rows), in key order: two batches touching the same
        rows on PostgreSQL lock them in the same order."""
        shard = random.randrange(STATS_SHARDS) if connection.dialect.name == "postgresql" else 0  # noqa: S311 (spreads locks)
        columns = ("company_id", "channel", "hour", "status", "error_code", "shard", "count")
        counts = [(*key, shard, by) for key, by in sorted(self.counts.items()) if by]
        await _upsert(connection, message_stats, columns, counts)
        latency_columns = ("company_id", "channel", "hour", "bin", "shard", "count")
        latencies = [(*key, shard, by) for key, by in sorted(self.latencies.items())]
        await _upsert(connection, message_latency, latency_columns, latencies)
        self.counts.clear()
        self.latencies.clear()


async def _write_gathered(connection: AsyncConnection, deltas: list[StatsDelta]) -> None:
    """A transaction's deltas summed into one write, so its rows are locked once, in key order."""
    total = StatsDelta()
    for delta in deltas:
        total.add(delta)
    await total.write_now(connection)


async def _upsert(
    connection: AsyncConnection, table: Table, columns: Sequence[str], rows: Sequence[tuple[object, ...]]
) -> None:
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    keys = [column.name for column in table.primary_key.columns]
    for start in range(0, len(rows), _UPSERT_ROWS):
        statement = insert(table).values(
            [dict(zip(columns, row, strict=True)) for row in rows[start : start + _UPSERT_ROWS]]
        )
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_={"count": table.c.count + statement.excluded.count}
        )
        await connection.execute(statement)


@dataclass(frozen=True, slots=True)
class StatsRows:
    """A window's aggregates, summed per bucket in the statement (a month's hour rows are tens
    of thousands; its day rows a thousand or so)."""

    counts: list[tuple[str, int, str, str, int]]  # channel, bucket start, status, error code, count
    latencies: list[tuple[str, int, int, int]]  # channel, bucket start, bin, count


async def read_stats(
    connection: AsyncConnection, company_id: str, start: int, end: int, size: int, channel: str | None
) -> StatsRows:
    """The company's rows of hours in [start, end) summed into buckets of `size` ms (an hour or a
    day; `start` a multiple of it), of one channel or all: a range of the primary keys."""
    stats_bucket = (message_stats.c.hour - message_stats.c.hour % size).label("bucket")
    counts = (
        select(
            message_stats.c.channel,
            stats_bucket,
            message_stats.c.status,
            message_stats.c.error_code,
            func.sum(message_stats.c.count),
        )
        .where(
            message_stats.c.company_id == company_id,
            message_stats.c.hour >= start,
            message_stats.c.hour < end,
        )
        .group_by(message_stats.c.channel, stats_bucket, message_stats.c.status, message_stats.c.error_code)
    )
    latency_bucket = (message_latency.c.hour - message_latency.c.hour % size).label("bucket")
    latencies = (
        select(
            message_latency.c.channel,
            latency_bucket,
            message_latency.c.bin,
            func.sum(message_latency.c.count),
        )
        .where(
            message_latency.c.company_id == company_id,
            message_latency.c.hour >= start,
            message_latency.c.hour < end,
        )
        .group_by(message_latency.c.channel, latency_bucket, message_latency.c.bin)
    )
    if channel is not None:
        counts = counts.where(message_stats.c.channel == channel)
        latencies = latencies.where(message_latency.c.channel == channel)
    return StatsRows(
        [(c, int(b), s, e, int(n)) for c, b, s, e, n in await connection.execute(counts)],
        [(c, int(b), int(i), int(n)) for c, b, i, n in await connection.execute(latencies)],
    )
