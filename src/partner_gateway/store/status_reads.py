"""Status look-ups by id: the API's hottest reads, run on the database driver itself.

Partners poll: one message, or a batch of hundreds, many times a second. Through SQLAlchemy's
execution layer a primary-key look-up cost about 115 µs of Python before and after the database's
own 10-20 µs (building an execution context, the greenlet hand-off, the result object; measured in
docs/performance.md). These statements never change, so they are compiled once per dialect from
the same SQLAlchemy expressions the rest of the store uses, and run straight on the driver:

* SQLite: a single-id look-up runs on the event loop's thread, on a connection of its own that
  only reads (one B-tree descent, about 10 µs: less than the hand-off to another thread would
  cost). That connection waits for no lock: if SQLite ever answers "busy" (a WAL reader can, for
  an instant, while another connection recovers or restarts the log), the look-up is re-run on the
  reader pool's thread, which waits as long as the store's busy timeout. Batches, whose hundreds
  of look-ups take milliseconds, always run on the pool's thread, so the loop keeps serving.
* PostgreSQL: a pool of asyncpg connections of its own, whose prepared statements are reused
  for the connection's life. Released connections are not reset: these statements change no
  session state, and the reset round trip would cost as much as the look-up.

Rows come back in MessageStatus's field order and become items through a StatusBuilder, as every
other status read does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, TypeVar

import asyncpg
import msgspec
from sqlalchemy import ARRAY, String, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.dialects.sqlite import aiosqlite as sqlite_aiosqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from partner_gateway.domain.statuses import Channel
from partner_gateway.errors import Unavailable
from partner_gateway.store.bulk import Positional, positional
from partner_gateway.store.repositories.messages import STATUS_COLUMNS, StatusBuilder, build_statuses
from partner_gateway.store.sqlite_driver import OneHopConnection
from partner_gateway.store.tables import messages

T = TypeVar("T")

_ONE = select(*STATUS_COLUMNS).where(
    messages.c.id == bindparam("id"),
    messages.c.company_id == bindparam("company_id"),
    messages.c.channel == bindparam("channel"),
)
_MANY_POSTGRESQL = select(*STATUS_COLUMNS).where(
    messages.c.id == any_(bindparam("ids", type_=ARRAY(String))),
    messages.c.company_id == bindparam("company_id"),
    messages.c.channel == bindparam("channel"),
)
# CROSS JOIN fixes SQLite's join order: each wanted id is one primary-key look-up. Left to
# itself, the planner may walk the company's (company_id, channel) index instead.
#
# The rows come back as one JSON text, [[id, channel, ...], ...]: sqlite3 gives up and retakes
# the GIL around every step of a statement, so 500 rows are 500 waits for the event loop's thread
# to let go of it (the loop busy, each can last a switch interval); one aggregate row is one.
# Measured (500 random ids, 1,000,000 messages): 320 statements/s as rows, 340/s as one JSON text
# decoded with msgspec; under load the batch-of-500 look-up went from 150 to 178 req/s.
_STATUS_COLUMN_LIST = ", ".join(f"m.{column.name}" for column in STATUS_COLUMNS)
_MANY_SQLITE = text(
    f"SELECT json_group_array(json_array({_STATUS_COLUMN_LIST}))"  # noqa: S608 - our own column names
    " FROM json_each(:ids) AS wanted CROSS JOIN messages AS m ON m.id = wanted.value"
    " WHERE m.company_id = :company_id AND m.channel = :channel"
)


Statement = Positional
"""SQL for one driver, and the names of its parameters in the order the driver takes them."""


class StatusReads(Protocol):
    """One message's status, or many in one round trip, as items made by `build`."""

    statements: ClassVar[dict[str, Statement]]
    """"one" and "many" as this store runs them (the query-plan tests EXPLAIN these)."""

    async def one(
        self, company_id: str, channel: Channel, message_id: str, build: StatusBuilder[T]
    ) -> T | None: ...

    async def many(
        self, company_id: str, channel: Channel, message_ids: Sequence[str], build: StatusBuilder[T]
    ) -> list[T]: ...

    async def close(self) -> None: ...


_SQLITE_ONE = positional(_ONE, sqlite_aiosqlite.dialect())
_SQLITE_MANY = positional(_MANY_SQLITE, sqlite_aiosqlite.dialect())
_POSTGRESQL_DIALECT = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]
_POSTGRESQL_ONE = positional(_ONE, _POSTGRESQL_DIALECT)
_POSTGRESQL_MANY = positional(_MANY_POSTGRESQL, _POSTGRESQL_DIALECT, driver_values=("ids",))  # a list


def _ordered(order: tuple[str, ...], **values: Any) -> tuple[Any, ...]:
    return tuple(values[name] for name in order)


def _fetch(connection: sqlite3.Connection, sql: str, parameters: Any) -> list[tuple[Any, ...]]:
    return connection.execute(sql, parameters).fetchall()


class _CompiledStatusReads:
    """`one` and `many` for any store: its compiled statements, how it passes a batch's ids and
    how it runs each statement are what a subclass gives."""

    statements: ClassVar[dict[str, Statement]]

    async def one(
        self, company_id: str, channel: Channel, message_id: str, build: StatusBuilder[T]
    ) -> T | None:
        sql, order = self.statements["one"]
        parameters = _ordered(order, id=message_id, company_id=company_id, channel=channel.value)
        rows = await self._read_one(sql, parameters)
        return build_statuses(rows, build)[0] if rows else None

    async def many(
        self, company_id: str, channel: Channel, message_ids: Sequence[str], build: StatusBuilder[T]
    ) -> list[T]:
        if not message_ids:
            return []
        sql, order = self.statements["many"]
        ids = self._ids_parameter(message_ids)
        parameters = _ordered(order, ids=ids, company_id=company_id, channel=channel.value)
        return build_statuses(await self._read_many(sql, parameters), build)

    def _ids_parameter(self, message_ids: Sequence[str]) -> Any:
        raise NotImplementedError

    async def _read_one(self, sql: str, parameters: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        raise NotImplementedError

    async def _read_many(self, sql: str, parameters: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        raise NotImplementedError


class SqliteStatusReads(_CompiledStatusReads):
    """SQLite: single ids on the loop's thread, batches on the reader pool's thread."""

    statements: ClassVar[dict[str, Statement]] = {"one": _SQLITE_ONE, "many": _SQLITE_MANY}

    def __init__(self, path: str, pool: AsyncEngine, read_pragmas: Sequence[str] = ()) -> None:
        self._path = path
        self._pool = pool
        self._read_pragmas = read_pragmas
        self._inline: sqlite3.Connection | None = None

    def _inline_connection(self) -> sqlite3.Connection:
        connection = self._inline
        if connection is None:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA query_only=ON")
            # Never wait on the loop's thread: "busy" sends the look-up to the pool (see module doc).
            connection.execute("PRAGMA busy_timeout=0")
            for pragma in self._read_pragmas:
                connection.execute(pragma)
            self._inline = connection
        return connection

    def _ids_parameter(self, message_ids: Sequence[str]) -> Any:
        return _encode_ids(message_ids).decode()  # text: SQLite takes a BLOB as JSONB, or refuses it

    async def _read_one(self, sql: str, parameters: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        try:
            return _fetch(self._inline_connection(), sql, parameters)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            return await self._on_pool(sql, parameters)

    async def _read_many(self, sql: str, parameters: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        [(rows_json,)] = await self._on_pool(sql, parameters)
        return _decode_rows(rows_json)

    async def _on_pool(self, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._pool.connect() as pooled:
            raw = await pooled.get_raw_connection()
            driver = raw.driver_connection
            assert isinstance(driver, OneHopConnection)
            return await driver.run_on_thread(_fetch, sql, parameters)

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None


_decode_rows = msgspec.json.Decoder(list[tuple[Any, ...]]).decode
_encode_ids = msgspec.json.Encoder().encode


_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # the server's goodbye arrived mid-statement
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    OSError,
)


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to undo after statements that change no session state."""


class PostgresStatusReads(_CompiledStatusReads):
    """PostgreSQL: a small asyncpg pool whose connections keep their prepared statements."""

    statements: ClassVar[dict[str, Statement]] = {"one": _POSTGRESQL_ONE, "many": _POSTGRESQL_MANY}

    def __init__(self, dsn: str, server_settings: dict[str, str], max_size: int = 10) -> None:
        self._dsn = dsn
        self._server_settings = server_settings
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def _connections(self) -> asyncpg.Pool:
        pool = self._pool
        if pool is None:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=0,  # no floor to restore: while the server is away, only the reads retry
                max_size=self._max_size,
                server_settings=self._server_settings,
                reset=_keep_session,
            )
            assert pool is not None
            self._pool = pool
        return pool

    def _ids_parameter(self, message_ids: Sequence[str]) -> Any:
        return list(message_ids)

    async def _read_one(self, sql: str, parameters: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        return await self._fetch(sql, parameters)

    async def _read_many(self, sql: str, parameters: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        return await self._fetch(sql, parameters)

    async def _fetch(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        """The rows; a connection lost (the server restarted, say) is replaced and the read run
        once more before the caller hears that the store is unavailable."""
        for attempt in (1, 2):
            try:
                pool = await self._connections()
                async with pool.acquire() as connection:
                    try:
                        rows: list[Any] = await connection.fetch(sql, *parameters)
                    except _CONNECTION_LOST:
                        connection.terminate()  # so the pool opens a new one, not hand this back
                        raise
                    return rows
            except _CONNECTION_LOST as error:
                if attempt == 2:
                    raise Unavailable("the PostgreSQL store is unreachable") from error
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
