"""Multi-row writes with their rows handed to the driver as tuples.

`connection.execute(statement, [dict, ...])` builds every row's parameters through the compiled
statement, in Python. The group commit's multi-row writes (several a message, a batch at a time)
spent about a tenth of the gateway's time under load there. The statements here are compiled once
per dialect from the same SQLAlchemy expressions, and run with `exec_driver_sql`: the same
connection and transaction, each row a tuple in the statement's parameter order. A 64-row INSERT
INTO messages took 920 µs as dicts, 700 µs as tuples; 64 timeline entries with RETURNING, 580 µs
and 360 µs.

That per-row step also runs each type's bind processor. None of this schema's types has one on
SQLite or asyncpg; compiling a statement checks that, and refuses one that would need it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Sequence
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class Rows:
    """`statement` for many rows, each a tuple of its parameters in `names` order.

    `names` must be the order the compiled statement takes its parameters in (an INSERT's columns
    in table order; an UPDATE's SET values, then its WHERE): compiling checks it, so a statement
    and its rows cannot drift apart.
    """

    def __init__(self, statement: ClauseElement, names: Sequence[str]) -> None:
        self._statement = statement
        self.names = tuple(names)
        self._sql: dict[str, str] = {}

    def sql(self, dialect: Dialect) -> str:
        """The statement's SQL for `dialect`, compiled on first use."""
        sql = self._sql.get(dialect.name)
        if sql is None:
            sql = self._sql[dialect.name] = self._compile(dialect)
        return sql

    async def execute(self, connection: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run the statement once per row (the driver's executemany)."""
        if rows:
            await connection.exec_driver_sql(self.sql(connection.dialect), list(rows))

    def _compile(self, dialect: Dialect) -> str:
        sql, order = positional(self._statement, dialect, column_keys=self.names)
        if order != self.names:
            raise ValueError(f"rows are given as {self.names}, the statement takes {order}")
        return sql


class InsertReturning(Rows):
    """An INSERT ... RETURNING for many rows: executemany gives no rows back, so it runs as one
    statement of many VALUES groups (a page at a time, within the dialect's parameter limits, as
    SQLAlchemy's own "insertmanyvalues" would)."""

    async def returning(
        self, connection: AsyncConnection, rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """The rows RETURNING gives, for all of `rows` (in no particular order)."""
        dialect = connection.dialect
        most = dialect.insertmanyvalues_max_parameters // len(self.names)
        page = max(1, min(dialect.insertmanyvalues_page_size, most))
        returned: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), page):
            chunk = rows[start : start + page]
            sql = _many_values(self.sql(dialect), dialect.paramstyle, len(self.names), len(chunk))
            parameters = tuple(value for row in chunk for value in row)
            returned.extend(tuple(row) for row in await connection.exec_driver_sql(sql, parameters))
        return returned


Positional = tuple[str, tuple[str, ...]]
"""A statement's SQL for one dialect, and the names of its parameters in the order it takes them."""


def positional(
    statement: ClauseElement,
    dialect: Dialect,
    column_keys: Sequence[str] = (),
    driver_values: Collection[str] = (),
) -> Positional:
    """`statement` compiled for `dialect`, to run on the driver with a tuple of values.

    Refuses a parameter whose type would need converting first (a bind processor): the driver
    gets each value as it is, unless the parameter is named in `driver_values` (the caller passes
    the driver's own form, e.g. a list for asyncpg's array). Refuses a parameter with a value of
    its own (a literal, say): the caller gives every value, so each must be a named parameter.
    """
    compiled = cast("SQLCompiler", statement.compile(dialect=dialect, column_keys=list(column_keys) or None))
    for name, bind in compiled.binds.items():
        if not bind.required and (bind.value is not None or bind.callable is not None):
            raise ValueError(f"parameter {name} has a value of its own: make it a named bindparam")
        if name in driver_values:
            continue
        if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
            raise TypeError(f"parameter {name} ({bind.type}) needs conversion on {dialect.name}")
    return compiled.string, tuple(compiled.positiontup or ())


_VALUES = " VALUES "
_DOLLAR = re.compile(r"\$([0-9]+)")


@functools.lru_cache(maxsize=128)  # a few per statement: the page sizes batches come in
def _many_values(sql: str, paramstyle: str, width: int, count: int) -> str:
    """A single-row INSERT's SQL with its VALUES group repeated for `count` rows of `width`."""
    start = end = sql.index(_VALUES) + len(_VALUES)
    depth = 0
    while True:  # to the parenthesis that closes the group (PostgreSQL's casts may hold some)
        depth += {"(": 1, ")": -1}.get(sql[end], 0)
        end += 1
        if depth == 0:
            break
    group = sql[start:end]

    def numbered(row: int) -> str:
        return _DOLLAR.sub(lambda match: f"${int(match[1]) + row * width}", group)

    if paramstyle == "qmark":
        groups = [group] * count
    elif paramstyle == "numeric_dollar":
        groups = [numbered(row) for row in range(count)]
    else:
        raise NotImplementedError(f"paramstyle {paramstyle}")
    return sql[:start] + ", ".join(groups) + sql[end:]
