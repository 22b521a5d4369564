"""Work tied to a `Database.write` transaction (store/database.py), kept in its connection's `info`:
what runs after it commits (metrics), and what it writes last, just before committing (counters
every transaction updates). A savepoint rolled back drops its own share of both.

Apart from database.py so that the store's modules can use it without importing the engines.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

AFTER_COMMIT = "partner_gateway.after_commit"
HANDOFF = "partner_gateway.callback_handoff"
"""Where a write transaction's connection info holds `Database.handoff`, while it has one."""
HANDED = "partner_gateway.callback_handed"
"""How many fresh events the transaction has handed so far (a group commit holds several
status batches: each takes what the sender has room for less what the others took)."""


def after_commit(connection: AsyncConnection, callback: Callable[[], None]) -> None:
    """Run `callback` once the transaction `connection` is in has committed (`Database.write`);
    never when it rolls back, nor for work of a savepoint rolled back (`rolled_back_since`).
    Outside `Database.write`, it is dropped. For what must count only what was stored: metrics."""
    pending = _pending(connection)
    if pending is not None:
        pending.append(callback)


LAST_WRITES = "partner_gateway.last_writes"

LastWrite = Callable[[AsyncConnection, list[Any]], Awaitable[None]]
"""Writes a transaction's gathered items, as its last statements (`write_last`)."""


def write_last(connection: AsyncConnection, write: LastWrite, item: object) -> bool:
    """Gather `item` for `write`, which runs once with every item gathered in the transaction
    as its last statements, just before `Database.write` commits; items of a savepoint rolled
    back (`rolled_back_since`) are dropped. For rows every transaction updates (the stats'
    counters): on PostgreSQL a row's lock is held from its update to the commit, so updated
    last and once, it is held for the commit alone. False outside `Database.write`: the caller
    writes the item itself."""
    if connection.invalidated:
        return False
    gathered: dict[LastWrite, list[Any]] | None = connection.info.get(LAST_WRITES)
    if gathered is None:
        return False
    gathered.setdefault(write, []).append(item)
    return True


CommitMark = tuple[int, dict[Any, int]]


def commit_mark(connection: AsyncConnection) -> CommitMark:
    """Where the transaction's after-commit work and last writes stand, for `rolled_back_since`."""
    gathered = {} if connection.invalidated else connection.info.get(LAST_WRITES) or {}
    return len(_pending(connection) or ()), {write: len(items) for write, items in gathered.items()}


def rolled_back_since(connection: AsyncConnection, mark: CommitMark) -> None:
    """A savepoint begun at `mark` rolled back: its after-commit work and last writes are dropped."""
    pending = _pending(connection)
    if pending is not None:
        del pending[mark[0] :]
    if not connection.invalidated:
        for write, items in (connection.info.get(LAST_WRITES) or {}).items():
            del items[mark[1].get(write, 0) :]


def _pending(connection: AsyncConnection) -> list[Callable[[], None]] | None:
    # A connection SQLAlchemy invalidated (its server went away) commits nothing; its `info`
    # would raise PendingRollbackError, hiding the outage's own error from the caller.
    if connection.invalidated:
        return None
    pending: list[Callable[[], None]] | None = connection.info.get(AFTER_COMMIT)
    return pending
