"""Messages, their event timelines and outbox items.

Every read here is one indexed query: a keyset page over one of the history indexes, or a
message's timeline. Status look-ups by id run below SQLAlchemy, in store/status_reads.py.

Status reads make their items with a StatusBuilder: MessageStatus by default, or whatever the
caller passes (the API builds its wire shape straight from the row, one object per message).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, overload

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    insert,
    or_,
    select,
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
from partner_gateway.store.bulk import Rows
from partner_gateway.store.tables import message_events, messages, outbox

STATUS_COLUMNS = (
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

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class StatusBuilder(Protocol[T_co]):
    """Makes one status item from a message's fields, given in MessageStatus's order.

    MessageStatus is one; so is any function taking these twelve values positionally.
    """

    def __call__(
        self,
        id: str,
        channel: Channel,
        to: str,
        reference: str | None,
        status: DeliveryStatus,
        description: str,
        error_code: str | None,
        created_at: int,
        updated_at: int,
        read_at: int | None,
        encoding: str | None,
        segments: int | None,
        /,
    ) -> T_co: ...


@dataclass(frozen=True, slots=True)
class HistorySlice(Generic[T]):
    """A history page's items and, when more messages follow, the keyset the next page starts after."""

    items: list[T]
    next_after: HistoryPosition | None


# Dictionary look-ups rather than Channel(value) / DeliveryStatus(value): the same members, a
# fraction of the cost, which adds up over a batch of 500 rows.
_CHANNELS = {channel.value: channel for channel in Channel}
_STATUSES = {status.value: status for status in DeliveryStatus}


def build_statuses(rows: Iterable[Sequence[Any]], build: StatusBuilder[T]) -> list[T]:
    """One item per row of STATUS_COLUMNS."""
    channels = _CHANNELS
    statuses = _STATUSES
    return [
        build(
            message_id,
            channels[channel],
            to,
            reference,
            statuses[status],
            description,
            error_code,
            created_at,
            updated_at,
            read_at,
            encoding,
            segments,
        )
        for (
            message_id,
            channel,
            to,
            reference,
            status,
            description,
            error_code,
            created_at,
            updated_at,
            read_at,
            encoding,
            segments,
        ) in rows
    ]


# An accepted message's three rows, as tuples (see store/bulk.py).
_NEW_MESSAGES = Rows(insert(messages), (
    "id", "company_id", "channel", "to_number", "sender", "reference", "status", "status_rank",
    "status_description", "error_code", "created_at", "updated_at", "read_at", "expires_at",
    "encoding", "segments", "callback_url", "body", "fallback_for",
))  # fmt: skip
_NEW_EVENTS = Rows(insert(message_events), (
    "message_id", "occurred_at", "recorded_at", "source", "status", "raw_state", "description",
    "error_code", "dedup_key",
))  # fmt: skip
_NEW_OUTBOX_ITEMS = Rows(insert(outbox), ("message_id", "channel", "available_at", "attempts", "created_at"))


class MessageRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._dialect = connection.dialect.name

    async def add_accepted(self, message: NewMessage) -> None:
        """Store an accepted message, the first entry of its timeline and its outbox item.

        Run inside the caller's transaction: the three rows commit together or not at all, so an
        accepted message always has the work item that will deliver it.
        """
        await self.add_accepted_many([message])

    async def add_accepted_many(self, accepted: Sequence[NewMessage]) -> None:
        """The same for many messages at once: three multi-row statements, whatever their number."""
        if not accepted:
            return
        queued, rank = DeliveryStatus.UNKNOWN.value, int(Rank.QUEUED)
        await _NEW_MESSAGES.execute(
            self._connection,
            [
                (
                    message.id,
                    message.company_id,
                    message.channel.value,
                    message.to,
                    message.sender,
                    message.reference,
                    queued,
                    rank,
                    ACCEPTED_DESCRIPTION,
                    None,  # error_code
                    message.created_at,
                    message.created_at,  # updated_at
                    None,  # read_at
                    message.expires_at,
                    message.encoding,
                    message.segments,
                    message.callback_url,
                    message.body,
                    message.fallback_for,
                )
                for message in accepted
            ],
        )
        await _NEW_EVENTS.execute(
            self._connection,
            [
                (
                    message.id,
                    message.created_at,
                    message.created_at,
                    "gateway",
                    queued,
                    "ACCEPTED",
                    ACCEPTED_DESCRIPTION,
                    None,
                    "gateway:accepted",
                )
                for message in accepted
            ],
        )
        await _NEW_OUTBOX_ITEMS.execute(
            self._connection,
            [
                (message.id, message.channel.value, message.created_at, 0, message.created_at)
                for message in accepted
            ],
        )

    async def history(
        self, filters: HistoryFilter, after: HistoryPosition | None, limit: int
    ) -> list[MessageStatus]:
        """One page, newest first, ties broken by id; `after` is the previous page's last item.

        Each filter shape walks its own index from the keyset position, so a deep page costs
        what the first one does. A status filter becomes one bounded branch per (channel,
        status) pair of the status index, merged: no branch reads more than `limit` rows.
        """
        rows = await self._connection.execute(_history_query(filters, after, limit))
        return build_statuses(rows.all(), MessageStatus)

    @overload
    async def history_page(
        self, filters: HistoryFilter, after: HistoryPosition | None, size: int
    ) -> HistorySlice[MessageStatus]: ...
    @overload
    async def history_page(
        self, filters: HistoryFilter, after: HistoryPosition | None, size: int, build: StatusBuilder[T]
    ) -> HistorySlice[T]: ...
    async def history_page(
        self,
        filters: HistoryFilter,
        after: HistoryPosition | None,
        size: int,
        build: StatusBuilder[Any] = MessageStatus,
    ) -> HistorySlice[Any]:
        """Up to `size` items as history() reads them, and where the next page starts if one follows.

        One more row than `size` is read to learn whether another page follows; the next page
        starts after the keyset of the last item returned.
        """
        rows = (await self._connection.execute(_history_query(filters, after, size + 1))).all()
        next_after = None
        if len(rows) > size:
            rows = rows[:size]
            last = rows[-1]
            next_after = HistoryPosition(created_at=last.created_at, message_id=last.id)
        return HistorySlice(items=build_statuses(rows, build), next_after=next_after)

    async def events(self, company_id: str, channel: Channel, message_id: str) -> list[MessageEvent] | None:
        """The timeline, oldest first; None when the message is not this company's on this channel."""
        owned = await self._connection.execute(
            select(messages.c.id).where(
                messages.c.id == message_id,
                messages.c.company_id == company_id,
                messages.c.channel == channel.value,
            )
        )
        if owned.first() is None:
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


def _history_query(filters: HistoryFilter, after: HistoryPosition | None, limit: int) -> Select[Any]:
    if filters.statuses and filters.to is None:
        channels = (filters.channel,) if filters.channel else tuple(Channel)
        branches = [
            _page_query(filters, after, limit, channel=channel, status=status).subquery().select()
            for channel in channels
            for status in filters.statuses
        ]
        merged = union_all(*branches).subquery()
        return select(merged).order_by(merged.c.created_at.desc(), merged.c.id.desc()).limit(limit)
    return _page_query(filters, after, limit, channel=filters.channel, statuses=filters.statuses)


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
        select(*STATUS_COLUMNS)
        .where(*conditions)
        .order_by(messages.c.created_at.desc(), messages.c.id.desc())
        .limit(limit)
    )
