"""The drivers' own ceilings: how many look-ups a second the database driver answers in-process.

No HTTP, no framework, no gateway: one connection, one statement after the other, on the CPU the
server gets (the server is not running then), against the same seeded table. A gateway figure
divided by these says what the layers above the driver cost:

- point: `SELECT * FROM messages WHERE id = ?`, a different id each time;
- IN-list of n: the same with n ids (`id IN (?, ...)` on SQLite, `id = ANY($1)` on PostgreSQL,
  as the gateway does there).

SQLite is measured through the stdlib `sqlite3` (the absolute ceiling) and through `aiosqlite`
(the driver the gateway runs on, one thread hop per statement with `execute_fetchall`), each
connection set as the gateway sets its own for reading (the memory map: see SQLITE_READ_PRAGMAS);
PostgreSQL through asyncpg with a prepared statement.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import SEED

from partner_gateway.config import Settings
from partner_gateway.store.database import sqlite_read_pragmas

# The gateway reads its store through a memory map (store/database.py); the ceiling reads the
# same database the same way, so a ratio measures the layers above the driver, not a setting.
# The defaults, as the bench's gateways run (gateway_env drops the caller's PARTNER_GATEWAY_*).
SQLITE_READ_PRAGMAS = sqlite_read_pragmas(Settings.model_construct())
WARMUP_FRACTION = 0.1  # of each figure's seconds, first at the point look-up: a warm page cache


@dataclass(frozen=True)
class DriverRate:
    key: str  # e.g. driver.point.aiosqlite
    label: str
    ops: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


@contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run this thread (and threads it starts, e.g. aiosqlite's) on `cpu`, then go back."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _percentile(sorted_ns: Sequence[int], fraction: float) -> float:
    if not sorted_ns:
        return 0.0
    return sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * fraction))] / 1e6


def _rate(key: str, label: str, samples: list[int], seconds: float) -> DriverRate:
    samples.sort()
    return DriverRate(
        key, label, len(samples), seconds, _percentile(samples, 0.5), _percentile(samples, 0.99)
    )


def _time_sync(call: Callable[[int], Any], seconds: float) -> tuple[list[int], float]:
    """Call `call(i)` until `seconds` have passed; per-call nanoseconds and the elapsed time."""
    samples: list[int] = []
    clock = time.perf_counter_ns
    began = clock()
    deadline = began + int(seconds * 1e9)
    i = 0
    while True:
        start = clock()
        if start >= deadline:
            break
        call(i)
        samples.append(clock() - start)
        i += 1
    return samples, (clock() - began) / 1e9


async def _time_async(call: Callable[[int], Awaitable[Any]], seconds: float) -> tuple[list[int], float]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    began = clock()
    deadline = began + int(seconds * 1e9)
    i = 0
    while True:
        start = clock()
        if start >= deadline:
            break
        await call(i)
        samples.append(clock() - start)
        i += 1
    return samples, (clock() - began) / 1e9


def _id_lists(ids: Sequence[str], size: int, count: int = 64) -> list[list[str]]:
    rng = random.Random(SEED + 3)
    return [rng.sample(list(ids), size) for _ in range(count)]


def _in_sql(size: int) -> str:
    return f"SELECT * FROM messages WHERE id IN ({', '.join('?' for _ in range(size))})"  # noqa: S608 - placeholders only


POINT_SQL = "SELECT * FROM messages WHERE id = ?"


def measure_sqlite(
    db_path: Path, ids: Sequence[str], in_sizes: Sequence[int], seconds: float, cpu: int | None
) -> list[DriverRate]:
    """Point and IN-list rates through sqlite3 and aiosqlite, each for `seconds` after a warm-up."""
    import sqlite3

    results: list[DriverRate] = []
    with pinned(cpu):
        connection = sqlite3.connect(db_path)
        for pragma in SQLITE_READ_PRAGMAS:
            connection.execute(pragma)
        try:
            _time_sync(
                lambda i: connection.execute(POINT_SQL, (ids[i % len(ids)],)).fetchall(),
                seconds * WARMUP_FRACTION,
            )
            samples, took = _time_sync(
                lambda i: connection.execute(POINT_SQL, (ids[i % len(ids)],)).fetchall(), seconds
            )
            results.append(_rate("driver.point.sqlite3", "sqlite3, point by id", samples, took))
            for size in in_sizes:
                lists, sql = _id_lists(ids, size), _in_sql(size)

                def in_list(i: int, lists: list[list[str]] = lists, sql: str = sql) -> Any:
                    return connection.execute(sql, lists[i % len(lists)]).fetchall()

                samples, took = _time_sync(in_list, seconds)
                results.append(
                    _rate(f"driver.in{size}.sqlite3", f"sqlite3, IN-list of {size}", samples, took)
                )
        finally:
            connection.close()
        results += _run_loop(_measure_aiosqlite(db_path, ids, in_sizes, seconds))
    return results


async def _measure_aiosqlite(
    db_path: Path, ids: Sequence[str], in_sizes: Sequence[int], seconds: float
) -> list[DriverRate]:
    import aiosqlite

    results: list[DriverRate] = []
    async with aiosqlite.connect(db_path) as connection:
        for pragma in SQLITE_READ_PRAGMAS:
            await connection.execute(pragma)

        async def point(i: int) -> Any:
            return await connection.execute_fetchall(POINT_SQL, (ids[i % len(ids)],))

        await _time_async(point, seconds * WARMUP_FRACTION)
        samples, took = await _time_async(point, seconds)
        results.append(_rate("driver.point.aiosqlite", "aiosqlite, point by id", samples, took))
        for size in in_sizes:
            lists, sql = _id_lists(ids, size), _in_sql(size)

            async def in_list(i: int, lists: list[list[str]] = lists, sql: str = sql) -> Any:
                return await connection.execute_fetchall(sql, lists[i % len(lists)])

            samples, took = await _time_async(in_list, seconds)
            results.append(
                _rate(f"driver.in{size}.aiosqlite", f"aiosqlite, IN-list of {size}", samples, took)
            )
    return results


def measure_postgres(
    dsn: str, ids: Sequence[str], in_sizes: Sequence[int], seconds: float, cpu: int | None
) -> list[DriverRate]:
    """Point and `= ANY($1)` rates through asyncpg prepared statements."""
    with pinned(cpu):
        return _run_loop(_measure_asyncpg(dsn, ids, in_sizes, seconds))


async def _measure_asyncpg(
    dsn: str, ids: Sequence[str], in_sizes: Sequence[int], seconds: float
) -> list[DriverRate]:
    import asyncpg

    results: list[DriverRate] = []
    connection = await asyncpg.connect(dsn)
    try:
        point_statement = await connection.prepare("SELECT * FROM messages WHERE id = $1")

        async def point(i: int) -> Any:
            return await point_statement.fetch(ids[i % len(ids)])

        await _time_async(point, seconds * WARMUP_FRACTION)
        samples, took = await _time_async(point, seconds)
        results.append(_rate("driver.point.asyncpg", "asyncpg, point by id", samples, took))
        any_statement = await connection.prepare("SELECT * FROM messages WHERE id = ANY($1::varchar[])")
        for size in in_sizes:
            lists = _id_lists(ids, size)

            async def in_list(i: int, lists: list[list[str]] = lists) -> Any:
                return await any_statement.fetch(lists[i % len(lists)])

            samples, took = await _time_async(in_list, seconds)
            results.append(_rate(f"driver.in{size}.asyncpg", f"asyncpg, ANY of {size} ids", samples, took))
    finally:
        await connection.close()
    return results


def _run_loop(work: Coroutine[Any, Any, list[DriverRate]]) -> list[DriverRate]:
    """On uvloop, as the gateway runs, so the async drivers are measured on the same loop."""
    try:
        import uvloop

        return uvloop.run(work)
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        return asyncio.run(work)
