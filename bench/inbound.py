"""What inbound messages cost: mobile-originated SMS over SMPP into the store.

    mo        the SMSC simulator delivers `--messages` MO deliver_sm (single-part, and as many
              3-part UCS-2 messages) to a bound SmppProvider whose sink is the real store
              (ReportRecorder in the group commit): messages stored per second, from the first
              deliver_sm written to the last acknowledged (wall clock, one process)

The opt-out check costs no statement of its own: it is an EXISTS on the opt_outs primary key in
the claim's read of its messages (tests/store/test_query_plans.py checks the probe).

    .venv/bin/python bench/inbound.py                        # SQLite in a temporary folder
    .venv/bin/python bench/inbound.py --database-url postgresql+asyncpg://postgres@127.0.0.1/postgres
    .venv/bin/python bench/inbound.py --smoke                # does it still run?
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from partner_gateway.channels.smpp.provider import SmppProvider
from partner_gateway.channels.smpp.settings import SmppCarrier
from partner_gateway.config import Settings
from partner_gateway.dispatch.reports import ReportRecorder
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.repositories import inbound
from partner_gateway.store.repositories.companies import CompanyRepository


@contextlib.asynccontextmanager
async def own_database(url: str | None) -> AsyncIterator[str | None]:
    """A PostgreSQL URL names a server: the bench makes a database of its own there and drops
    it after, never touching another (SQLite: a file in a temporary folder)."""
    if url is None or not url.startswith("postgresql"):
        yield url
        return
    name = f"pgw_bench_{uuid.uuid4().hex[:12]}"
    admin = url.replace("postgresql+asyncpg", "postgresql")
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield f"{url.rsplit('/', 1)[0]}/{name}"
    finally:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


async def mo(runtime: Runtime, company_id: str, count: int) -> dict[str, float]:
    async with runtime.database.write() as connection:
        await inbound.assign_number(connection, company_id, Channel.SMS, "12345", now_ms())
    batcher = WriteBatcher(runtime.database)
    batcher.start()
    recorder = ReportRecorder(batcher)
    config = SmscConfig(port=0, password="bench", max_pending_receipts=10 * count + 10)  # noqa: S106
    smsc = SmscSimulator(config)
    await smsc.start()
    carrier = SmppCarrier(name="bench", host="127.0.0.1", port=smsc.port, system_id="gateway",
                          password=SecretStr("bench"), window=200)  # fmt: skip
    provider = SmppProvider(carrier)
    await provider.start(recorder)
    assert await provider.wait_bound(10)
    figures = {}
    try:
        for label, text_of, parts in (
            ("single-part", lambda i: f"Reply number {i}", 1),
            ("3-part UCS-2", lambda i: f"{i} " + "Grüße aus Köln ☃ " * 10, 3),
        ):
            before_ack, before_stored = smsc.stats.receipts_acknowledged, recorder.inbound.stored
            started = time.perf_counter()
            for i in range(count):
                smsc.send_mo(f"+49151{i:08d}", "12345", text_of(i))
            while smsc.stats.receipts_acknowledged - before_ack < count * parts:  # noqa: ASYNC110 - polling the simulator's counters
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            assert recorder.inbound.stored - before_stored == count, "every message stored once"
            figures[f"MO {label} messages/s"] = count / elapsed
    finally:
        await provider.stop()
        await smsc.stop()
        await batcher.stop()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    messages = 50 if args.smoke else args.messages
    with tempfile.TemporaryDirectory() as folder:
        async with own_database(args.database_url) as url:
            figures, dialect = await _run(Path(folder), url, messages)
    print(f"store: {dialect}; {messages} messages of each kind")
    for name, value in figures.items():
        print(f"  {name:45} {value:10.1f}")


async def _run(folder: Path, url: str | None, messages: int) -> tuple[dict[str, float], str]:
    runtime = await Runtime.start(Settings(data_dir=folder, database_url=url))
    try:
        async with runtime.database.write() as connection:
            company = await CompanyRepository(connection).create("Bench", now_ms())
        return await mo(runtime, company.id, messages), runtime.database.dialect
    finally:
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
