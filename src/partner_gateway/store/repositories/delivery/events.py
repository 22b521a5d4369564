"""The message timeline: one entry per report or note, stored once per (message, dedup key).

Entries go to the driver as tuples (store/bulk.py) in `_EVENT_COLUMNS` order, many in one
statement; the statement returns the entries it stored, so a caller knows which reports are new.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.store.bulk import InsertReturning
from partner_gateway.store.dialects import insert_skipping_duplicates
from partner_gateway.store.tables import message_events

_EVENT_COLUMNS = (
    "message_id", "occurred_at", "recorded_at", "source", "status", "raw_state", "description",
    "error_code", "dedup_key",
)  # fmt: skip
Event = tuple[str, int, int, str, str | None, str, str, str | None, str]
"""A timeline entry, as a row of message_events in _EVENT_COLUMNS order."""


@functools.cache
def _new_events(dialect: str) -> InsertReturning:
    statement = insert_skipping_duplicates(dialect, message_events).returning(
        message_events.c.message_id, message_events.c.dedup_key
    )
    return InsertReturning(statement, _EVENT_COLUMNS)


def event(
    message_id: str,
    *,
    occurred_at: int,
    recorded_at: int,
    source: str,
    status: DeliveryStatus | None,
    raw_state: str,
    description: str,
    error_code: str | None,
    dedup_key: str,
) -> Event:
    """A timeline entry, as a row of message_events (its texts cut to their columns)."""
    return (
        message_id,
        occurred_at,
        recorded_at,
        source,
        status.value if status else None,
        raw_state[:100],
        description[:300],
        error_code,
        dedup_key[:200],
    )


async def insert_events(connection: AsyncConnection, events: Sequence[Event]) -> list[bool]:
    """Store timeline entries in one statement; for each, whether it is new. An entry stored before
    (the same report twice: same message and dedup key) is skipped, and so is a repeat within
    `events`: only the first counts, as if they were stored one by one."""
    if not events:
        return []
    returned = await _new_events(connection.dialect.name).returning(connection, events)
    stored = {(message_id, dedup_key) for message_id, dedup_key in returned}
    new = []
    for entry in events:
        key = (entry[0], entry[-1])
        new.append(key in stored)
        stored.discard(key)
    return new


async def add_note(
    connection: AsyncConnection,
    message_id: str,
    raw_state: str,
    description: str,
    dedup_key: str,
    now: int,
    *,
    source: str = "gateway",
) -> None:
    """A timeline entry that changes no status."""
    entry = event(
        message_id,
        occurred_at=now,
        recorded_at=now,
        source=source,
        status=None,
        raw_state=raw_state,
        description=description,
        error_code=None,
        dedup_key=dedup_key,
    )
    await insert_events(connection, [entry])
