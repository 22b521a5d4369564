"""History reads run one compiled statement per filter shape: every shape takes exactly the values
its read gives, on both dialects, and a shape is compiled once whatever its values."""

from __future__ import annotations

import itertools
import re

import pytest
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.dialects.sqlite import aiosqlite as sqlite_aiosqlite
from sqlalchemy.engine import Dialect

from partner_gateway.domain.messages import HistoryFilter, HistoryPosition
from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.store.repositories.messages import _history_read, _history_sql

DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite_aiosqlite.dialect(),
    "postgresql": postgresql_asyncpg.dialect(),  # type: ignore[no-untyped-call]
}
STATUSES = ((), (DeliveryStatus.DELIVERED,), (DeliveryStatus.ERROR, DeliveryStatus.EXPIRED))


def every_filter() -> list[tuple[HistoryFilter, HistoryPosition | None]]:
    cases = []
    for channel, statuses, to, start, end, after in itertools.product(
        (None, Channel.SMS), STATUSES, (None, "+4915112345678"), (None, 1), (None, 2**40), (None, 5)
    ):
        filters = HistoryFilter("cmp_a", start=start, end=end, channel=channel, statuses=statuses, to=to)
        cases.append((filters, None if after is None else HistoryPosition(after, "msg_01")))
    return cases


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_shape_takes_the_values_its_read_gives(dialect: str) -> None:
    for filters, after in every_filter():
        shape, values = _history_read(filters, after, 101)
        sql, order = _history_sql(shape, DIALECTS[dialect])
        assert set(order) <= values.keys(), (filters, after)
        # SQLite takes a value per placeholder; PostgreSQL numbers each name once ($2 ... $2).
        placeholders = sql.count("?") if dialect == "sqlite" else len(set(re.findall(r"\$[0-9]+", sql)))
        assert placeholders == len(order), (filters, after)
        named = {key for key, value in values.items() if value is not None}
        assert named <= set(order), (filters, after)  # nothing given is dropped


def test_a_shape_is_compiled_once_whatever_its_values() -> None:
    dialect = DIALECTS["sqlite"]
    one, one_values = _history_read(
        HistoryFilter("cmp_a", channel=Channel.SMS), HistoryPosition(5, "m1"), 101
    )
    other, other_values = _history_read(
        HistoryFilter("cmp_b", channel=Channel.RCS), HistoryPosition(9, "m2"), 11
    )
    assert one == other
    assert one_values != other_values
    assert _history_sql(one, dialect) is _history_sql(other, dialect)
