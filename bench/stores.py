"""The stores a run measures on, made fresh for the run and removed after it.

- SQLite: a data directory in the run's temp folder (the gateway's embedded default).
- PostgreSQL: a database `pgw_bench_<random>` created through the admin DSN and dropped at the
  end, or a database the caller names (`--database-url`, kept).
- RabbitMQ: a vhost `pgw_bench_<random>` made and deleted with `rabbitmqctl`, for the workers.

Each store also answers the few reads the bench makes itself (ids to look up, cursor positions,
delivery progress) through :class:`Reader`, with `?` placeholders on either engine.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from common import BenchError, log

DEFAULT_PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
RABBITMQCTL_TIMEOUT_SECONDS = 120


class Reader(Protocol):
    def fetchall(self, sql: str, *params: Any) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


class SqliteReader:
    """A plain sqlite3 connection; WAL lets it read beside the gateway's writer."""

    def __init__(self, db_path: Path) -> None:
        self._connection = sqlite3.connect(db_path)

    def fetchall(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return list(self._connection.execute(sql, params).fetchall())

    def close(self) -> None:
        self._connection.close()


class PostgresReader:
    """One asyncpg connection driven by a private event loop, so callers stay synchronous."""

    def __init__(self, dsn: str) -> None:
        import asyncpg

        self._loop = asyncio.new_event_loop()
        self._connection = self._loop.run_until_complete(asyncpg.connect(dsn))

    def fetchall(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        rows = self._loop.run_until_complete(self._connection.fetch(_dollar_placeholders(sql), *params))
        return [tuple(row) for row in rows]

    def close(self) -> None:
        self._loop.run_until_complete(self._connection.close())
        self._loop.close()


def _dollar_placeholders(sql: str) -> str:
    """`?` to `$1`, `$2`, ...: the bench's own SQL has no `?` inside literals."""
    numbers = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


@dataclass
class Store:
    """Where one gateway's data lives: its kind, its URL for the gateway, and how to read it."""

    kind: str  # "sqlite" | "postgres"
    data_dir: Path
    database_url: str | None = None  # None: the gateway's SQLite in data_dir
    dsn: str | None = None  # PostgreSQL, for asyncpg
    admin_dsn: str | None = None  # set when this run created the database and must drop it
    name: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "partner-gateway.db"

    @property
    def label(self) -> str:
        return {"sqlite": "SQLite", "postgres": "PostgreSQL"}[self.kind]

    def reader(self) -> Reader:
        if self.kind == "sqlite":
            return SqliteReader(self.sqlite_path)
        assert self.dsn is not None
        return PostgresReader(self.dsn)

    def drop(self) -> None:
        """Drop the database if this run created it."""
        if self.admin_dsn and self.name:
            asyncio.run(_admin(self.admin_dsn, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            log(f"dropped database {self.name}")


async def _admin(admin_dsn: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def sqlite_store(data_dir: Path) -> Store:
    return Store("sqlite", data_dir)


def postgres_store(data_dir: Path, *, admin_dsn: str, database_url: str | None) -> Store:
    """A fresh database through `admin_dsn`, or the one `database_url` names (left in place)."""
    if database_url:
        dsn = re.sub(r"^postgresql\+asyncpg://", "postgresql://", database_url)
        return Store("postgres", data_dir, database_url=database_url, dsn=dsn)
    name = f"pgw_bench_{secrets.token_hex(5)}"
    try:
        asyncio.run(_admin(admin_dsn, f'CREATE DATABASE "{name}"'))
    except OSError as error:
        raise BenchError(f"PostgreSQL at {admin_dsn} is not reachable ({error}); is it running?") from error
    log(f"created database {name}")
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    url = re.sub(r"^postgresql://", "postgresql+asyncpg://", dsn)
    return Store("postgres", data_dir, database_url=url, dsn=dsn, admin_dsn=admin_dsn, name=name)


def rabbitmqctl(*args: str) -> None:
    try:
        subprocess.run(
            ["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=RABBITMQCTL_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise BenchError(f"rabbitmqctl {' '.join(args)} failed: {error}") from error


class RabbitVhost:
    """A vhost of this run's own on the local RabbitMQ; `url` is what the workers are given."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5672) -> None:
        self.name = f"pgw_bench_{secrets.token_hex(5)}"
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        self.url = f"amqp://guest:guest@{host}:{port}/{self.name}"
        log(f"created RabbitMQ vhost {self.name}")

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name)
        log(f"deleted RabbitMQ vhost {self.name}")
