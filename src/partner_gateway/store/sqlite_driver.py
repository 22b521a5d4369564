"""aiosqlite with one trip to the connection's thread per statement.

aiosqlite runs each sqlite3 call on the connection's own thread and wakes the event loop with the
answer. Through SQLAlchemy's aiosqlite dialect a statement is four such calls (make a cursor,
execute, fetch all rows, close), each a queue hand-off, a thread wake-up and a loop wake-up, and
each fighting the event loop for the GIL. Measured on this project's machine (bench/README.md),
those hand-offs, not SQLite, were most of the cost of a look-up and of the dispatcher's small
writes. Here a statement is one call: the thread executes, fetches every row and closes its
cursor, and the cursor SQLAlchemy holds only hands back what was fetched.

This is the whole driver difference: transactions, isolation and connection set-up stay
aiosqlite's and SQLAlchemy's (`create_async_engine(..., async_creator=one_hop_connector(path))`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import aiosqlite

Row = tuple[Any, ...]
R = TypeVar("R")
_Outcome = tuple[Any, int, int | None, list[Row]]


def _execute(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    return _run_statement(connection, sql, parameters, many=False)


def _executemany(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    return _run_statement(connection, sql, parameters, many=True)


def _run_statement(connection: sqlite3.Connection, sql: str, parameters: Any, *, many: bool) -> _Outcome:
    """On the connection's thread: execute, fetch every row, close the cursor."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneHopCursor:
    """The cursor SQLAlchemy's adapter drives: every sqlite3 call of a statement in one trip."""

    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Row] = []

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = ()) -> OneHopCursor:
        await self._run(_execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> OneHopCursor:
        await self._run(_executemany, sql, parameters)
        return self

    async def _run(
        self, call: Callable[[sqlite3.Connection, str, Any], _Outcome], sql: str, parameters: Any
    ) -> None:
        outcome: _Outcome = await self._connection.run_on_thread(call, sql, parameters)
        self.description, self.rowcount, self.lastrowid, self._rows = outcome

    async def fetchall(self) -> list[Row]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Row | None:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Row]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def close(self) -> None:
        self._rows = []


class OneHopConnection(aiosqlite.Connection):
    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)

    async def run_on_thread(
        self, call: Callable[[sqlite3.Connection, str, Any], R], sql: str, parameters: Any
    ) -> R:
        """`call(connection, sql, parameters)` on the connection's thread: one trip."""
        queue_call = cast("Callable[..., Awaitable[R]]", self._execute)  # aiosqlite is untyped
        return await queue_call(call, self._conn, sql, parameters)


def one_hop_connector(path: str) -> Callable[[], Awaitable[OneHopConnection]]:
    """An `async_creator` for SQLAlchemy: a started connection to the database file at `path`."""

    async def connect() -> OneHopConnection:
        connection = OneHopConnection(lambda: sqlite3.connect(path), iter_chunk_size=64)
        await connection
        return connection

    return connect
