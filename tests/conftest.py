"""Shared fixtures: a real store (SQLite by default, PostgreSQL when asked), the app, companies.

`PARTNER_GATEWAY_TEST_DATABASE_URL=postgresql+asyncpg://...` runs the suite on PostgreSQL: a
fresh database is created for the session and emptied between tests.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from partner_gateway.api.app import create_app
from partner_gateway.config import Settings
from partner_gateway.runtime import Runtime
from partner_gateway.store.tables import metadata
from support import Partner, make_partner

TEST_DATABASE_URL = os.environ.get("PARTNER_GATEWAY_TEST_DATABASE_URL", "")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    if not TEST_DATABASE_URL.startswith("postgresql"):
        yield None
        return
    name = f"pgw_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = TEST_DATABASE_URL.replace("postgresql+asyncpg", "postgresql")
    asyncio.run(_admin(admin_dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{TEST_DATABASE_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def settings(tmp_path: Path, postgres_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=postgres_url)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    started = await Runtime.start(settings)
    if started.database.dialect == "postgresql":
        # One database serves the session: each test starts from empty tables.
        async with started.database.write() as connection:
            names = ", ".join(
                table.name for table in metadata.sorted_tables if table.name != "instance_secrets"
            )
            await connection.execute(text(f"TRUNCATE {names}"))
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def client(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield http


@pytest.fixture
async def partner(runtime: Runtime) -> Partner:
    return await make_partner(runtime, "Acme")


@pytest.fixture
async def other_partner(runtime: Runtime) -> Partner:
    return await make_partner(runtime, "Globex")
