"""The message timeline: one entry per report or note, stored once per (message, dedup key).

Entries go to the driver as tuples (store/bulk.py) in `_EVENT_COLUMNS` order, many in one
statement; the statement returns the entries it stored, so a caller knows which reports are new.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.reports import StatusReport
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


def event(message_id: str, report: StatusReport, recorded_at: int, description: str | None = None) -> Event:
    """A report's timeline entry for a message, as a row of message_events (its texts cut to
    their columns); `description` in place of the report's own (a part's, say)."""
    return (
        message_id,
        report.occurred_at,
        recorded_at,
        report.provider,
        report.status.value if report.status else None,
        report.raw_state[:100],
        (report.description if description is None else description)[:300],
        report.error_code,
        report.dedup_key[:200],
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
    note = StatusReport(source, None, raw_state, description, now, dedup_key)
    await insert_events(connection, [event(message_id, note, now)])
