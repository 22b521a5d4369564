"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


def insert_ignoring_duplicates(
    dialect: str, table: Table, values: dict[str, Any] | list[dict[str, Any]]
) -> Insert:
    """INSERT that skips rows violating a unique constraint (ON CONFLICT DO NOTHING)."""
    if dialect == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing()
    return sqlite.insert(table).values(values).on_conflict_do_nothing()
