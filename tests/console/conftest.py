"""The console's browser tests run against a real `partner-gateway serve` (the embedded default:
its simulators, SQLite or a PostgreSQL database of its own), one for the module."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import asyncpg
import pytest

from e2e_support import Gateway, serving

SERVE_ENV = {
    # Receipts after 3 s: the message page shows SENT before it turns DELIVERED.
    "PARTNER_GATEWAY_SIMULATOR_RECEIPT_DELAY_SECONDS": "3",
    "PARTNER_GATEWAY_CALLBACK_ALLOW_PRIVATE_NETWORKS": "true",
    "PARTNER_GATEWAY_LOG_LEVEL": "WARNING",
}


@pytest.fixture(scope="module")
def console_gateway(tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None) -> Iterator[Gateway]:
    with contextlib.ExitStack() as stack:
        folder = tmp_path_factory.mktemp("console-gateway")
        database = None
        if postgres_url:
            # The session's database is the in-process tests' (emptied by each): this gateway,
            # which lives through the module, gets one of its own.
            server, name = postgres_url.rsplit("/", 1)
            admin = postgres_url.replace("postgresql+asyncpg", "postgresql")
            asyncio.run(_admin(admin, f'CREATE DATABASE "{name}_console"'))
            stack.callback(
                lambda: asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}_console" WITH (FORCE)'))
            )
            database = f"{server}/{name}_console"
        yield stack.enter_context(serving(folder, database, SERVE_ENV))


async def _admin(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
