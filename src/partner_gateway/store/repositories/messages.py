"""Messages, their event timelines and outbox items.

Every read here is one indexed query: a look-up by primary key, a batch by primary key (one
round trip whatever the number of ids), or a keyset page over one of the history indexes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Select,
    String,
    and_,
    any_,
    bindparam,
    insert,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.messages import (
    HistoryFilter,
    HistoryPosition,
    MessageEvent,
    MessageStatus,
    NewMessage,
)
from partner_gateway.domain.statuses import ACCEPTED_DESCRIPTION, Channel, DeliveryStatus, Rank
from partner_gateway.store.tables import message_events, messages, outbox

_STATUS_COLUMNS = (
    messages.c.id,
    messages.c.channel,
    messages.c.to_number,
    messages.c.reference,
    messages.c.status,
    messages.c.status_description,
    messages.c.error_code,
    messages.c.created_at,
    messages.c.updated_at,
    messages.c.read_at,
    messages.c.encoding,
    messages.c.segments,
)

_ONE = select(*_STATUS_COLUMNS).where(
    messages.c.id == bindparam("id"),
    messages.c.company_id == bindparam("company_id"),
    messages.c.channel == bindparam("channel"),
)


_MANY_POSTGRESQL = select(*_STATUS_COLUMNS).where(
    messages.c.id == any_(bindparam("ids", type_=ARRAY(String))),
    messages.c.company_id == bindparam("company_id"),
    messages.c.channel == bindparam("channel"),
)
# CROSS JOIN fixes SQLite's join order: each wanted id is one primary-key look-up. Left to
# itself, the planner may walk the company's (company_id, channel) index instead.
_STATUS_COLUMN_LIST = ", ".join(f"m.{column.name}" for column in _STATUS_COLUMNS)
_MANY_SQLITE = text(
    f"SELECT {_STATUS_COLUMN_LIST}"  # noqa: S608 - our own column names, no input
    " FROM json_each(:ids) AS wanted CROSS JOIN messages AS m ON m.id = wanted.value"
    " WHERE m.company_id = :company_id AND m.channel = :channel"
)


def _status_from_row(row: Sequence[Any]) -> MessageStatus:
    return MessageStatus(
        id=row[0],
        channel=Channel(row[1]),
        to=row[2],
        reference=row[3],
        status=DeliveryStatus(row[4]),
        description=row[5],
        error_code=row[6],
        created_at=row[7],
        updated_at=row[8],
        read_at=row[9],
        encoding=row[10],
        segments=row[11],
    )


class MessageRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._dialect = connection.dialect.name

    async def add_accepted(self, message: NewMessage) -> None:
        """Store an accepted message, the first entry of its timeline and its outbox item.

        Run inside the caller's transaction: the three rows commit together or not at all, so an
        accepted message always has the work item that will deliver it.
        """
        await self._connection.execute(
            insert(messages).values(
                id=message.id,
                company_id=message.company_id,
                channel=message.channel.value,
                to_number=message.to,
                sender=message.sender,
                reference=message.reference,
                status=DeliveryStatus.UNKNOWN.value,
                status_rank=int(Rank.QUEUED),
                status_description=ACCEPTED_DESCRIPTION,
                error_code=None,
                created_at=message.created_at,
                updated_at=message.created_at,
                expires_at=message.expires_at,
                encoding=message.encoding,
                segments=message.segments,
                callback_url=message.callback_url,
                body=message.body,
                fallback_for=message.fallback_for,
            )
        )
        await self._connection.execute(
            insert(message_events).values(
                message_id=message.id,
                occurred_at=message.created_at,
                recorded_at=message.created_at,
                source="gateway",
                status=DeliveryStatus.UNKNOWN.value,
                raw_state="ACCEPTED",
                description=ACCEPTED_DESCRIPTION,
                dedup_key="gateway:accepted",
            )
        )
        await self._connection.execute(
            insert(outbox).values(
                message_id=message.id,
                channel=message.channel.value,
                available_at=message.created_at,
                attempts=0,
                created_at=message.created_at,
            )
        )

    async def status(self, company_id: str, channel: Channel, message_id: str) -> MessageStatus | None:
        row = (
            await self._connection.execute(
                _ONE, {"id": message_id, "company_id": company_id, "channel": channel.value}
            )
        ).first()
        return _status_from_row(row) if row else None

    async def statuses(
        self, company_id: str, channel: Channel, message_ids: Sequence[str]
    ) -> list[MessageStatus]:
        """Many messages in one round trip: the ids travel as one array (PostgreSQL) or one JSON
        text (SQLite), so the statement is the same whatever their number."""
        if not message_ids:
            return []
        if self._dialect == "postgresql":
            rows = await self._connection.execute(
                _MANY_POSTGRESQL,
                {"ids": list(message_ids), "company_id": company_id, "channel": channel.value},
            )
        else:
            rows = await self._connection.execute(
                _MANY_SQLITE,
                {"ids": json.dumps(list(message_ids)), "company_id": company_id, "channel": channel.value},
            )
        return [_status_from_row(row) for row in rows]

    async def history(
        self, filters: HistoryFilter, after: HistoryPosition | None, limit: int
    ) -> list[MessageStatus]:
        """One page, newest first, ties broken by id; `after` is the previous page's last item.

        Each filter shape walks its own index from the keyset position, so a deep page costs
        what the first one does. A status filter becomes one bounded branch per (channel,
        status) pair of the status index, merged: no branch reads more than `limit` rows.
        """
        if filters.statuses and filters.to is None:
            channels = (filters.channel,) if filters.channel else tuple(Channel)
            branches = [
                _page_query(filters, after, limit, channel=channel, status=status).subquery().select()
                for channel in channels
                for status in filters.statuses
            ]
            merged = union_all(*branches).subquery()
            query: Select[Any] = (
                select(merged).order_by(merged.c.created_at.desc(), merged.c.id.desc()).limit(limit)
            )
        else:
            query = _page_query(filters, after, limit, channel=filters.channel, statuses=filters.statuses)
        rows = await self._connection.execute(query)
        return [_status_from_row(row) for row in rows]

    async def events(self, company_id: str, channel: Channel, message_id: str) -> list[MessageEvent] | None:
        """The timeline, oldest first; None when the message is not this company's on this channel."""
        if await self.status(company_id, channel, message_id) is None:
            return None
        rows = await self._connection.execute(
            select(
                message_events.c.occurred_at,
                message_events.c.recorded_at,
                message_events.c.source,
                message_events.c.status,
                message_events.c.raw_state,
                message_events.c.description,
                message_events.c.error_code,
            )
            .where(message_events.c.message_id == message_id)
            .order_by(message_events.c.id)  # the order we learned them: provider clocks are coarse
        )
        return [
            MessageEvent(
                occurred_at=row.occurred_at,
                recorded_at=row.recorded_at,
                source=row.source,
                status=DeliveryStatus(row.status) if row.status else None,
                raw_state=row.raw_state,
                description=row.description,
                error_code=row.error_code,
            )
            for row in rows
        ]


def _page_query(
    filters: HistoryFilter,
    after: HistoryPosition | None,
    limit: int,
    *,
    channel: Channel | None,
    status: DeliveryStatus | None = None,
    statuses: tuple[DeliveryStatus, ...] = (),
) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [messages.c.company_id == filters.company_id]
    if channel is not None:
        conditions.append(messages.c.channel == channel.value)
    if status is not None:
        conditions.append(messages.c.status == status.value)
    if statuses:
        conditions.append(messages.c.status.in_([s.value for s in statuses]))
    if filters.to is not None:
        conditions.append(messages.c.to_number == filters.to)
    if filters.start is not None:
        conditions.append(messages.c.created_at >= filters.start)
    if filters.end is not None:
        conditions.append(messages.c.created_at < filters.end)
    if after is not None:
        # Written out rather than as a row-value comparison: `created_at <= x` is a plain range
        # bound every planner turns into an index seek.
        conditions.append(messages.c.created_at <= after.created_at)
        conditions.append(
            or_(
                messages.c.created_at < after.created_at,
                and_(messages.c.created_at == after.created_at, messages.c.id < after.message_id),
            )
        )
    return (
        select(*_STATUS_COLUMNS)
        .where(*conditions)
        .order_by(messages.c.created_at.desc(), messages.c.id.desc())
        .limit(limit)
    )
