"""GET /messages/stats on a store of 1,000,000 messages: a day by hour and a month by day.

    .venv/bin/python bench/stats.py [--messages 1000000] [--days 30] [--rounds 30]

The messages are written by bench/seeding.py (straight into the table, as the other benches'
stores are); their aggregates are then filled as migration 0013 fills a stored table, and their
latency bins from each final message's updated_at. The endpoint is called in-process through
httpx's ASGI transport (the HTTP server's own cost is what bench/run.py measures), and the same
window counted straight over the messages table (the index-backed way, without the aggregates) is
timed beside it. Prints the median and the slowest of `rounds` calls, in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from seeding import DAY_MS, Company, seed_sqlite

from partner_gateway.api.app import create_app
from partner_gateway.config import Settings
from partner_gateway.runtime import Runtime
from partner_gateway.store.message_stats import HOUR_MS, hour_of, latency_bin
from support import BASE, make_partner

FINAL = ("DELIVERED", "ERROR", "EXPIRED")
BACKFILL = (
    "INSERT INTO message_stats (company_id, channel, hour, status, error_code, count) "
    "SELECT company_id, channel, created_at - created_at % 3600000, status, COALESCE(error_code, ''), "
    "COUNT(*) FROM messages GROUP BY 1, 2, 3, 4, 5"
)
BRUTE_FORCE = (
    "SELECT channel, created_at - created_at % ?, status, error_code, COUNT(*) FROM messages "
    "WHERE company_id = ? AND created_at >= ? AND created_at < ? GROUP BY 1, 2, 3, 4"
)


def fill_aggregates(db_path: Path) -> None:
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        connection.execute("BEGIN")
        connection.execute(BACKFILL)
        bins: Counter[tuple[str, str, int, int]] = Counter()
        rows = connection.execute(
            "SELECT company_id, channel, created_at, updated_at FROM messages WHERE status IN (?, ?, ?)",
            FINAL,
        )
        for company_id, channel, created_at, updated_at in rows:
            bins[(company_id, channel, hour_of(created_at), latency_bin(updated_at - created_at))] += 1
        connection.executemany(
            "INSERT INTO message_latency (company_id, channel, hour, bin, count) VALUES (?, ?, ?, ?, ?)",
            [(*key, count) for key, count in bins.items()],
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


async def timed(call: object, rounds: int) -> tuple[float, float]:
    spent = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()  # type: ignore[operator]
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent), max(spent)


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp()) / "data"
    settings = Settings(data_dir=data_dir)
    runtime = await Runtime.start(settings)
    partner = await make_partner(runtime, "bench-big")
    other = await make_partner(runtime, "bench-2")
    await runtime.close()
    db_path = data_dir / "partner-gateway.db"
    companies = [
        Company(partner.company_id, "bench-big", partner.api_key),
        Company(other.company_id, "bench-2", other.api_key),
    ]
    facts = seed_sqlite(db_path, companies, args.messages, 0.9, args.days)
    print(
        f"seeded {facts['messages']:,} messages in {facts['seconds']} s; big company {companies[0].messages:,}"
    )
    began = time.perf_counter()
    fill_aggregates(db_path)
    print(f"aggregates filled in {time.perf_counter() - began:.1f} s")

    runtime = await Runtime.start(settings)
    try:
        app = create_app(settings, runtime)
        now = int(time.time() * 1000)
        today = now - now % DAY_MS
        windows = {
            "a day by hour": (today - DAY_MS, today, "hour", HOUR_MS),
            "a month by day": (today - 31 * DAY_MS, today, "day", DAY_MS),
        }
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client:
            for label, (start, end, bucket, size) in windows.items():
                params = {
                    "startDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start / 1000)),
                    "endDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end / 1000)),
                    "bucket": bucket,
                }

                async def call(params: dict[str, str] = params) -> None:
                    response = await client.get(
                        f"{BASE}/messages/stats", params=params, headers=partner.headers
                    )
                    assert response.status_code == 200, response.text

                await call()
                median, slowest = await timed(call, args.rounds)
                reader = sqlite3.connect(db_path)

                async def brute(
                    start: int = start, end: int = end, size: int = size, reader: sqlite3.Connection = reader
                ) -> None:
                    reader.execute(BRUTE_FORCE, (size, partner.company_id, start, end)).fetchall()

                counted = reader.execute(
                    "SELECT COUNT(*) FROM messages WHERE company_id = ? AND created_at >= ? AND created_at < ?",
                    (partner.company_id, start, end),
                ).fetchone()[0]
                brute_median, brute_slowest = await timed(brute, max(3, args.rounds // 10))
                reader.close()
                print(
                    f"{label:15} ({counted:,} messages): endpoint median {median:.1f} ms, slowest {slowest:.1f} ms; "
                    f"counted over messages instead: median {brute_median:.0f} ms, slowest {brute_slowest:.0f} ms"
                )
    finally:
        await runtime.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=30)
    asyncio.run(main(parser.parse_args()))
