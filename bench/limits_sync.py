"""What sharing the rate limits costs the store: one sync round of one API process, by how many
companies' counts moved since the last round (issue 16).

Two processes' limiters on one fresh PostgreSQL database (`pgw_bench_*`, dropped after): each
round, every company admits one more request in both, then each runs `RateLimitSync.share()` (one
upsert of its moved counts, one read of the other's). The figure is the time of one `share()`,
median and p90 over the rounds. It runs beside the server, in the background, every
PARTNER_GATEWAY_RATE_LIMIT_SYNC_SECONDS (0.5 s), never on a request.

    .venv/bin/python bench/limits_sync.py                       # 10, 100, 1,000, 10,000 companies
    .venv/bin/python bench/limits_sync.py --companies 100 --rounds 50
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import log
from stores import DEFAULT_PG_ADMIN_DSN, postgres_store

from partner_gateway.api.rate_limits.limiter import RateLimiter
from partner_gateway.api.rate_limits.sync import RateLimitSync
from partner_gateway.config import Settings
from partner_gateway.domain.rate_limits import Limit, Traffic
from partner_gateway.runtime import Runtime


async def measure(database_url: str, companies: int, rounds: int) -> tuple[float, float]:
    runtime = await Runtime.start(Settings(database_url=database_url))
    try:
        limits = {Traffic.SENDS: Limit.of(1e6), Traffic.READS: Limit.of(1e6)}
        limiters = [RateLimiter(limits) for _ in range(2)]
        syncs = [
            RateLimitSync(limiter, runtime.database, shared=True, process_id=f"bench-{n}")
            for n, limiter in enumerate(limiters)
        ]
        names = [f"cmp_bench_{n:06d}" for n in range(companies)]
        timings: list[float] = []
        for _ in range(rounds):
            for limiter in limiters:
                for name in names:
                    limiter.admit(name, Traffic.READS)
            for sync in syncs:
                started = time.perf_counter()
                await sync.share()
                timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        return statistics.median(timings), timings[int(len(timings) * 0.9)]
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--companies", default="10,100,1000,10000", help="comma-separated counts")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--pg-admin-dsn", default=DEFAULT_PG_ADMIN_DSN)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = postgres_store(Path(folder), admin_dsn=args.pg_admin_dsn, database_url=None)
        try:
            assert store.database_url is not None
            print("companies moved  median ms  p90 ms")
            for count in (int(c) for c in args.companies.split(",")):
                log(f"{count} companies, {args.rounds} rounds")
                median, p90 = asyncio.run(measure(store.database_url, count, args.rounds))
                print(f"{count:>15,}  {median:9.2f}  {p90:6.2f}")
        finally:
            store.drop()


if __name__ == "__main__":
    main()
