"""Engines and connections: the one place that knows which database engine is underneath.

SQLite gets two engines: readers (a small pool, each statement its own snapshot under WAL) and
one writer connection whose transactions start with BEGIN IMMEDIATE. One writer serialises the
process's writes without busy-waiting and without the deadlock SQLite reports when two deferred
transactions both try to upgrade to writing. PostgreSQL uses one pooled engine for both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from partner_gateway.config import Settings
from partner_gateway.store.commit_hooks import AFTER_COMMIT, HANDED, HANDOFF, LAST_WRITES, LastWrite
from partner_gateway.store.sqlite_driver import one_hop_connector
from partner_gateway.store.status_reads import PostgresStatusReads, SqliteStatusReads, StatusReads

# Safety nets, not limits any healthy write comes near (a group commit takes milliseconds): a
# transaction stuck behind a lock, or left open by a stalled client, fails and is retried by the
# pipeline instead of holding up every worker's writes behind it.
POSTGRESQL_SESSION_SETTINGS = {
    "lock_timeout": "30s",
    "idle_in_transaction_session_timeout": "60s",
    "application_name": "partner-gateway",
}


logger = logging.getLogger(__name__)


class Database:
    def __init__(self, reader: AsyncEngine, writer: AsyncEngine, status_reads: StatusReads) -> None:
        self.reader = reader
        self.writer = writer
        self.status_reads = status_reads
        """Status look-ups by id, below SQLAlchemy (the API's hottest reads)."""
        self.dialect = writer.dialect.name
        self.handoff: object | None = None
        """This process's callback sender, when it takes fresh events in memory: every write
        transaction carries it (`HANDOFF` in its connection's info) to the code that writes
        events (store/repositories/delivery/callback_events.py)."""

    @classmethod
    def from_settings(cls, settings: Settings, *, fsync_commits: bool = True) -> Database:
        """`fsync_commits=False`: on SQLite, this process's commits reach the disk with the next
        checkpoint or another process's commit instead of each at once (synchronous=NORMAL).
        Only for a process whose writes a power cut may undo (the callback sender's: an
        outcome lost means a callback sent again, at least once)."""
        url = settings.resolved_database_url()
        if url.startswith("sqlite"):
            _ensure_sqlite_dir(url)
            # One trip to aiosqlite's thread per statement instead of four (see sqlite_driver).
            path = make_url(url).database or ":memory:"
            connect = one_hop_connector(path)
            # Readers run in autocommit: each statement is its own snapshot under WAL, and no
            # BEGIN/ROLLBACK round trips through aiosqlite's thread are spent on them.
            reader = create_async_engine(
                url,
                async_creator=connect,
                pool_size=8,
                max_overflow=0,
                isolation_level="AUTOCOMMIT",
                skip_autocommit_rollback=True,
                pool_reset_on_return=None,
            )
            writer = create_async_engine(
                url, async_creator=connect, pool_size=1, max_overflow=0, pool_timeout=60
            )
            pragmas = sqlite_pragmas(settings, fsync_commits=fsync_commits)
            _configure_sqlite(reader, pragmas, immediate=False)
            _configure_sqlite(writer, pragmas, immediate=True)
            return cls(reader, writer, SqliteStatusReads(path, reader, sqlite_read_pragmas(settings)))
        engine = create_async_engine(
            url,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            connect_args={"server_settings": POSTGRESQL_SESSION_SETTINGS},
        )
        status_reads = PostgresStatusReads(
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
            POSTGRESQL_SESSION_SETTINGS,
        )
        return cls(engine, engine, status_reads)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as connection:
            yield connection

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits when the block ends and rolls back on an exception. What
        was registered with `after_commit` in it runs once it has committed, never otherwise."""
        committed: list[Callable[[], None]] = []
        last: dict[LastWrite, list[Any]] = {}
        async with self.writer.begin() as connection:
            info = connection.info  # not read again at the end: see commit_hooks.py
            info[AFTER_COMMIT] = committed
            info[LAST_WRITES] = last
            if self.handoff is not None:
                info[HANDOFF] = self.handoff
            try:
                yield connection
                info.pop(LAST_WRITES, None)  # what the last writes write is not gathered
                for write, items in last.items():
                    if items:
                        await write(connection, items)
            finally:
                info.pop(AFTER_COMMIT, None)
                info.pop(LAST_WRITES, None)
                info.pop(HANDOFF, None)
                info.pop(HANDED, None)
        for callback in committed:
            try:
                callback()
            except Exception:  # committed is committed: what follows must not fail the write
                logger.exception("after-commit work failed")

    async def dispose(self) -> None:
        await self.status_reads.close()
        await self.reader.dispose()
        if self.writer is not self.reader:
            await self.writer.dispose()


def _ensure_sqlite_dir(url: str) -> None:
    from pathlib import Path

    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def sqlite_read_pragmas(settings: Settings) -> list[str]:
    """How every connection reads the SQLite store (the bench's driver ceilings read so too)."""
    # Pages read through a memory map cost no read() call and no copy. Status batches read
    # hundreds of rows scattered over the file: 500 random ids of a 1,000,000-message store
    # took 2.5-2.9 ms read() by read(), 1.7 ms mapped (docs/performance.md).
    return [f"PRAGMA mmap_size={int(settings.sqlite_mmap_bytes)}"]


def sqlite_pragmas(settings: Settings, *, fsync_commits: bool = True) -> list[str]:
    """What every pooled connection to the SQLite store is set to."""
    return [
        "PRAGMA journal_mode=WAL",
        # FULL: a 202 means the message is on disk, even across a power cut.
        f"PRAGMA synchronous={'FULL' if fsync_commits else 'NORMAL'}",
        f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}",
        "PRAGMA foreign_keys=ON",
        *sqlite_read_pragmas(settings),
    ]


def _configure_sqlite(engine: AsyncEngine, pragmas: list[str], *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control from the driver so BEGIN is ours to emit (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    if immediate:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
