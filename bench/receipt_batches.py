"""The receipt path's cost with and without callback targets: one batch of gateway reports
(SENT for 500 messages, then DELIVERED for them) applied in one transaction, in-process on
SQLite or PostgreSQL, alternating the two kinds of messages.

    .venv/bin/python bench/receipt_batches.py [--rounds 20] [--batch 500] [--database-url URL]

"without": messages with no callbackUrl of a company with no default URL (the status read joins
callback_settings and finds nothing; the counter is bumped in the same UPDATE); "with": their own
callbackUrl, so each change also renders and stores an event. Prints the median milliseconds per
batch of each, and per message. Run it on an older checkout (PYTHONPATH=<old>/src) for the cost of
the callback columns themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sqlalchemy import update

from partner_gateway.config import Settings
from partner_gateway.domain.reports import GATEWAY, StatusReport
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import delivery
from partner_gateway.store.tables import messages
from support import make_partner, seed


async def batch_ms(runtime: Runtime, company_id: str, size: int, url: str | None) -> float:
    ids = await seed(runtime, company_id, [now_ms()] * size)
    if url is not None:
        async with runtime.database.write() as connection:
            await connection.execute(update(messages).where(messages.c.id.in_(ids)).values(callback_url=url))
    spent = 0.0
    for status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED):
        reports = [
            StatusReport(
                GATEWAY, status, status.value, status.value, now_ms(), f"{i}:{status.value}", message_id=i
            )
            for i in ids
        ]
        started = time.perf_counter()
        async with runtime.database.write() as connection:
            await delivery.apply_gateway_reports(connection, reports, now_ms())
        spent += time.perf_counter() - started
    return spent * 1000 / 2


async def main(args: argparse.Namespace) -> None:
    settings = Settings(data_dir=Path(tempfile.mkdtemp()) / "data", database_url=args.database_url)
    runtime = await Runtime.start(settings)
    try:
        partner = await make_partner(runtime)
        results: dict[str, list[float]] = {"without": [], "with": []}
        for _ in range(args.rounds):
            for kind, url in (("without", None), ("with", "https://partner.example/cb")):
                results[kind].append(await batch_ms(runtime, partner.company_id, args.batch, url))
        for kind, values in results.items():
            median = statistics.median(values)
            print(
                f"{kind:8} callbacks: {median:7.2f} ms per batch of {args.batch} ({1000 * median / args.batch:.1f} µs per message)"
            )
    finally:
        await runtime.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--database-url", default=None)
    asyncio.run(main(parser.parse_args()))
