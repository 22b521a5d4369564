"""Status reads below SQLAlchemy keep their promises when the database is busy or goes away."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from partner_gateway.config import Settings
from partner_gateway.domain.messages import MessageStatus
from partner_gateway.domain.statuses import Channel
from partner_gateway.errors import Unavailable
from partner_gateway.runtime import Runtime
from partner_gateway.store.status_reads import PostgresStatusReads
from support import seed

T0 = 1_795_000_000_000


async def test_a_busy_sqlite_store_sends_the_look_up_to_the_pool_which_waits(tmp_path: Path) -> None:
    """The loop's own connection never waits for a lock; the pool's does (busy timeout)."""
    runtime = await Runtime.start(Settings(data_dir=tmp_path / "data"))
    try:
        [message_id] = await seed(runtime, "cmp_a", [T0])
        path = runtime.settings.resolved_database_url().split("///", 1)[-1]
        # An exclusive-mode writer keeps every other connection from even reading; it can only
        # take that lock while no other connection has the file open (the pools reopen theirs).
        await runtime.database.reader.dispose()
        await runtime.database.writer.dispose()
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE messages SET reference = 'held' WHERE id = ?", (message_id,))

        async def release_soon() -> None:
            await asyncio.sleep(0.3)
            holder.execute("COMMIT")
            holder.execute("PRAGMA locking_mode=NORMAL")
            holder.execute("SELECT 1 FROM messages LIMIT 1")  # gives up the exclusive lock
            holder.close()

        releasing = asyncio.create_task(release_soon())
        found = await runtime.database.status_reads.one("cmp_a", Channel.SMS, message_id, MessageStatus)
        await releasing
        assert found is not None
        assert found.reference == "held"  # read after the writer let go, not around it
    finally:
        await runtime.close()


async def test_an_unreachable_postgresql_store_is_unavailable() -> None:
    reads = PostgresStatusReads("postgresql://nobody@127.0.0.1:9/none", {})
    try:
        with pytest.raises(Unavailable):
            await reads.one("cmp_a", Channel.SMS, "msg_1", MessageStatus)
    finally:
        await reads.close()


async def test_a_postgresql_connection_lost_between_reads_is_replaced(runtime: Runtime) -> None:
    if runtime.database.dialect != "postgresql":
        pytest.skip("PostgreSQL behaviour: runs in the suite's PostgreSQL pass")
    [message_id] = await seed(runtime, "cmp_a", [T0])
    reads = runtime.database.status_reads
    assert await reads.one("cmp_a", Channel.SMS, message_id, MessageStatus) is not None
    url = runtime.settings.resolved_database_url().replace("postgresql+asyncpg", "postgresql")
    admin = await asyncpg.connect(url)
    try:
        # Every connection of the gateway's, the status reads' pool among them, as a restart would.
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'partner-gateway' AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    found = await reads.one("cmp_a", Channel.SMS, message_id, MessageStatus)
    assert found is not None
    assert found.id == message_id
