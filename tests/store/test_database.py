"""The engines are configured as the docs promise, on the engine the suite runs on."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from partner_gateway.runtime import Runtime
from partner_gateway.store.status_reads import SqliteStatusReads


async def test_connections_carry_their_safety_settings(runtime: Runtime) -> None:
    async with runtime.database.write() as connection:
        if runtime.database.dialect == "postgresql":
            # A stuck transaction fails instead of holding every worker's writes behind it.
            assert await connection.scalar(text("SHOW lock_timeout")) == "30s"
            assert await connection.scalar(text("SHOW idle_in_transaction_session_timeout")) == "1min"
            assert await connection.scalar(text("SHOW application_name")) == "partner-gateway"
        else:
            # A 202 means on disk: WAL, fsync at every commit, and foreign keys enforced.
            assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await connection.scalar(text("PRAGMA synchronous")) == 2
            assert await connection.scalar(text("PRAGMA foreign_keys")) == 1


async def test_sqlite_connections_read_through_a_memory_map(runtime: Runtime) -> None:
    """Every connection reads the store mapped (the setting's default); SQLite may cap the size."""
    if runtime.database.dialect != "sqlite":
        pytest.skip("SQLite behaviour: runs in the suite's SQLite pass")
    async with runtime.database.read() as connection:
        assert await connection.scalar(text("PRAGMA mmap_size")) > 0
    async with runtime.database.write() as connection:
        assert await connection.scalar(text("PRAGMA mmap_size")) > 0
    status_reads = runtime.database.status_reads
    assert isinstance(status_reads, SqliteStatusReads)
    [(mapped,)] = status_reads._inline_connection().execute("PRAGMA mmap_size").fetchall()
    assert mapped > 0
