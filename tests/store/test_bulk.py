"""Multi-row writes as tuples: every statement's parameter order on both dialects, the checks that
refuse a statement the driver cannot be handed raw, and INSERT ... RETURNING over several pages."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, bindparam, insert, select
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.dialects.sqlite import aiosqlite as sqlite_aiosqlite
from sqlalchemy.engine import Dialect

from partner_gateway.runtime import Runtime
from partner_gateway.store import bulk
from partner_gateway.store.bulk import InsertReturning, Rows
from partner_gateway.store.repositories import messages
from partner_gateway.store.repositories.delivery import events, part_batch, parts, status_batch
from partner_gateway.store.tables import message_events

DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite_aiosqlite.dialect(),
    "postgresql": postgresql_asyncpg.dialect(),  # type: ignore[no-untyped-call]
}


def statements(dialect: str) -> dict[str, Rows]:
    return {
        "new messages": messages._NEW_MESSAGES,
        "new events": messages._NEW_EVENTS,
        "new outbox items": messages._NEW_OUTBOX_ITEMS,
        "new parts": parts._new_parts(dialect),
        "new events, returning": events._new_events(dialect),
        "part status": part_batch._UPDATE_PART_STATUS,
        "part read": part_batch._UPDATE_PART_READ,
        "message status": status_batch._UPDATE_MESSAGE_STATUS,
        "message read": status_batch._UPDATE_MESSAGE_READ,
    }


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_statement_takes_its_rows_in_the_declared_order(dialect: str) -> None:
    for name, statement in statements(dialect).items():
        sql = statement.sql(DIALECTS[dialect])  # raises on a different order or a bind processor
        placeholders = sql.count("?") if dialect == "sqlite" else sql.count("$")
        assert placeholders == len(statement.names), name


_scratch = Table(
    "scratch",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("at", DateTime),
    Column("s", String),
)


def test_a_statement_and_its_rows_cannot_drift_apart() -> None:
    with pytest.raises(ValueError, match="the statement takes"):
        Rows(insert(_scratch), ("s", "id")).sql(DIALECTS["sqlite"])


def test_a_parameter_needing_conversion_is_refused() -> None:
    # SQLite has no datetime type: SQLAlchemy turns datetimes into strings, which raw tuples would skip.
    with pytest.raises(TypeError, match="needs conversion"):
        Rows(insert(_scratch), ("id", "at")).sql(DIALECTS["sqlite"])
    assert Rows(insert(_scratch), ("id", "s")).sql(DIALECTS["sqlite"])


def test_a_parameter_with_a_value_of_its_own_is_refused() -> None:
    # Run with a tuple of the caller's values, a literal's value would be missing from it. SQLite's
    # dialect writes OFFSET (0) after any LIMIT, so a page's OFFSET must be named too.
    limit = bindparam("limit", type_=Integer)
    with pytest.raises(ValueError, match="a value of its own"):
        bulk.positional(select(_scratch.c.id).where(_scratch.c.s == "x"), DIALECTS["sqlite"])
    with pytest.raises(ValueError, match="a value of its own"):
        bulk.positional(select(_scratch.c.id).limit(limit), DIALECTS["sqlite"])
    named = select(_scratch.c.id).limit(limit).offset(bindparam("offset", type_=Integer))
    for dialect in DIALECTS.values():
        assert bulk.positional(named, dialect)[1] == ("limit", "offset")


def test_many_values_repeats_and_renumbers_the_values_group() -> None:
    qmark = "INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING a"
    assert bulk._many_values(qmark, "qmark", 2, 3) == (
        "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?) ON CONFLICT DO NOTHING RETURNING a"
    )
    dollar = "INSERT INTO t (a, b) VALUES ($1::VARCHAR, coalesce($2::BIGINT, 0)) RETURNING t.a"
    assert bulk._many_values(dollar, "numeric_dollar", 2, 2) == (
        "INSERT INTO t (a, b) VALUES ($1::VARCHAR, coalesce($2::BIGINT, 0)),"
        " ($3::VARCHAR, coalesce($4::BIGINT, 0)) RETURNING t.a"
    )


async def test_insert_returning_runs_page_by_page(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    def event(n: int, dedup: str) -> tuple[Any, ...]:
        return (f"msg_{n}", n, n, "gateway", None, "NOTE", "a note", None, dedup)

    statement: InsertReturning = events._new_events(runtime.database.dialect)
    async with runtime.database.write() as connection:
        monkeypatch.setattr(connection.dialect, "insertmanyvalues_page_size", 7)
        first = [event(n, "first") for n in range(30)]
        returned = await statement.returning(connection, first)
        assert sorted(tuple(row) for row in returned) == sorted((row[0], row[-1]) for row in first)
        again = [event(n, "first" if n % 2 else "second") for n in range(30)]
        returned = await statement.returning(connection, again)
        assert sorted(tuple(row) for row in returned) == sorted(
            (f"msg_{n}", "second") for n in range(0, 30, 2)
        )
        stored = (await connection.execute(select(message_events.c.occurred_at))).scalars().all()
    assert sorted(stored) == sorted([*range(30), *range(0, 30, 2)])
