"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


@functools.cache
def insert_skipping_duplicates(dialect: str, table: Table) -> Insert:
    """INSERT that skips rows violating a unique constraint (ON CONFLICT DO NOTHING), built once
    per table; run with a list of rows."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing()


def insert_ignoring_duplicates(
    dialect: str, table: Table, values: dict[str, Any] | list[dict[str, Any]]
) -> Insert:
    """`insert_skipping_duplicates` with its values in the statement."""
    return insert_skipping_duplicates(dialect, table).values(values)
