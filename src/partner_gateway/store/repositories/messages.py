"""Messages, their event timelines and outbox items.

Every read here is one indexed query: a keyset page over one of the history indexes, or a
message's timeline. A history page's statement is built and compiled once per filter shape and
run with its values as a tuple (`_HistoryShape`). Status look-ups by id run below SQLAlchemy, in
store/status_reads.py.

Status reads make their items with a StatusBuilder: MessageStatus by default, or whatever the
caller passes (the API builds its wire shape straight from the row, one object per message).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.messages import (
    STATUS_FIELDS,
    HistoryFilter,
    HistoryPosition,
    MessageEvent,
    MessageStatus,
    NewMessage,
)
from partner_gateway.domain.statuses import (
    ACCEPTED_DESCRIPTION,
    CHANNEL_BY_NAME,
    Channel,
    DeliveryStatus,
    Rank,
)
from partner_gateway.store.bulk import Positional, Rows, positional
from partner_gateway.store.message_stats import StatsDelta
from partner_gateway.store.tables import message_events, message_parts, messages, outbox

# A status field's column, where the two names differ.
_STATUS_FIELD_COLUMNS = {"to": "to_number", "description": "status_description"}
STATUS_COLUMNS = tuple(messages.c[_STATUS_FIELD_COLUMNS.get(name, name)] for name in STATUS_FIELDS)
"""The columns of a status read, in MessageStatus's field order."""

_STATUS_COLUMN_NAMES = [column.name for column in STATUS_COLUMNS]
_ID = _STATUS_COLUMN_NAMES.index("id")
_CREATED_AT = _STATUS_COLUMN_NAMES.index("created_at")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


StatusBuilder = Callable[
    [
        str,
        Channel,
        str,
        str | None,
        DeliveryStatus,
        str,
        str | None,
        int,
        int,
        int | None,
        str | None,
        int | None,
        str | None,
        str | None,
    ],
    T_co,
]
"""Makes one status item from a message's fields, given positionally in MessageStatus's order
(the one place they are named): MessageStatus is one, api/views.py's status_item another."""


@dataclass(frozen=True, slots=True)
class HistorySlice(Generic[T]):
    """A history page's items and, when more messages follow, the keyset the next page starts after."""

    items: list[T]
    next_after: HistoryPosition | None


# Dictionary look-ups rather than Channel(value) / DeliveryStatus(value): the same members, a
# fraction of the cost, which adds up over a batch of 500 rows.
_STATUSES = {status.value: status for status in DeliveryStatus}


def build_statuses(rows: Iterable[Sequence[Any]], build: StatusBuilder[T]) -> list[T]:
    """One item per row of STATUS_COLUMNS."""
    channels = CHANNEL_BY_NAME
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
            fallback_for,
            fallback_sms,
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
            fallback_for,
            fallback_sms,
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


@dataclass(frozen=True, slots=True)
class FallbackCandidate:
    """A message a provider's report names, with what sending its fallback SMS needs."""

    message_id: str
    company_id: str
    to: str
    status: str
    expires_at: int
    body: str
    fallback_sms: str | None


_FALLBACK_CANDIDATES = (
    select(
        message_parts.c.provider_key,
        messages.c.id,
        messages.c.company_id,
        messages.c.to_number,
        messages.c.status,
        messages.c.expires_at,
        messages.c.body,
        messages.c.fallback_sms,
    )
    .select_from(message_parts.join(messages, messages.c.id == message_parts.c.message_id))
    .where(
        message_parts.c.provider == bindparam("provider"),
        message_parts.c.provider_key.in_(bindparam("keys", expanding=True)),
    )
)


class MessageRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._dialect = connection.dialect.name

    async def fallback_candidates(self, provider: str, keys: Sequence[str]) -> dict[str, FallbackCandidate]:
        """The messages whose parts have these provider ids, by id (a rare read: a channel's
        give-up on a destination)."""
        rows = await self._connection.execute(
            _FALLBACK_CANDIDATES, {"provider": provider, "keys": list(keys)}
        )
        return {key: FallbackCandidate(*rest) for key, *rest in rows}

    async def link_fallback_sms(self, message_id: str, sms_id: str) -> None:
        """Note on an RCS message the SMS sent in its place (its `fallbackSms`)."""
        await self._connection.execute(
            update(messages).where(messages.c.id == message_id).values(fallback_sms=sms_id)
        )

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
        delta = StatsDelta()  # each counted UNKNOWN in its hour (store/message_stats.py)
        for message in accepted:
            delta.count(message.company_id, message.channel.value, message.created_at, queued, None, 1)
        await delta.write(self._connection)
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
        return build_statuses(await self._history_rows(filters, after, limit), MessageStatus)

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
        rows = await self._history_rows(filters, after, size + 1)
        next_after = None
        if len(rows) > size:
            rows = rows[:size]
            last = rows[-1]
            next_after = HistoryPosition(created_at=last[_CREATED_AT], message_id=last[_ID])
        return HistorySlice(items=build_statuses(rows, build), next_after=next_after)

    async def _history_rows(
        self, filters: HistoryFilter, after: HistoryPosition | None, limit: int
    ) -> Sequence[Sequence[Any]]:
        shape, values = _history_read(filters, after, limit)
        sql, order = _history_sql(shape, self._connection.dialect)
        result = await self._connection.exec_driver_sql(sql, tuple(values[name] for name in order))
        return result.all()

    async def events(self, company_id: str, channel: Channel, message_id: str) -> list[MessageEvent] | None:
        """The timeline, oldest first; None when the message is not this company's on this channel."""
        owned = (
            await self._connection.execute(
                select(messages.c.created_at).where(
                    messages.c.id == message_id,
                    messages.c.company_id == company_id,
                    messages.c.channel == channel.value,
                )
            )
        ).first()
        if owned is None:
            return None
        return await timeline(self._connection, message_id, owned.created_at)


@dataclass(frozen=True, slots=True)
class _HistoryShape:
    """Which conditions a history read has. Its statement depends on these, never on their values,
    so each shape is built and compiled once (`_history_sql`) and runs with its values as a tuple.

    Built per request, the SQLAlchemy expression and its cache key cost 205 µs for a first page
    and 397 µs for a deep one (isolated): more than the statement itself, and the difference alone
    made a deep page measurably slower than the first under load (issue 6).
    """

    branches: int  # > 0: a merge of this many (channel, status) branches, see `history`
    channel: bool
    statuses: int  # the size of the status IN list, when not branched
    to: bool
    start: bool
    end: bool
    after: bool


def _history_read(
    filters: HistoryFilter, after: HistoryPosition | None, limit: int
) -> tuple[_HistoryShape, dict[str, Any]]:
    """The shape of this read and its parameters by name."""
    values: dict[str, Any] = {
        "company_id": filters.company_id,
        "limit": limit,
        "offset": 0,
        "to": filters.to,
        "start": filters.start,
        "end": filters.end,
    }
    if after is not None:
        values["after_at"], values["after_id"] = after.created_at, after.message_id
    branches = 0
    if filters.statuses and filters.to is None:
        channels = (filters.channel,) if filters.channel else tuple(Channel)
        pairs = [(channel, status) for channel in channels for status in filters.statuses]
        for number, (channel, status) in enumerate(pairs):
            values[f"channel_{number}"], values[f"status_{number}"] = channel.value, status.value
        branches = len(pairs)
    else:
        if filters.channel is not None:
            values["channel"] = filters.channel.value
        for number, status in enumerate(filters.statuses):
            values[f"status_{number}"] = status.value
    shape = _HistoryShape(
        branches=branches,
        channel=not branches and filters.channel is not None,
        statuses=0 if branches else len(filters.statuses),
        to=filters.to is not None,
        start=filters.start is not None,
        end=filters.end is not None,
        after=after is not None,
    )
    return shape, values


@functools.lru_cache(maxsize=512)  # shapes are few: the filters a partner combines
def _history_sql(shape: _HistoryShape, dialect: Dialect) -> Positional:
    return positional(_history_statement(shape), dialect)


def _history_statement(shape: _HistoryShape) -> Select[Any]:
    if shape.branches:
        branches = [
            _page_statement(shape, channel=f"channel_{number}", status=f"status_{number}").subquery().select()
            for number in range(shape.branches)
        ]
        merged = union_all(*branches).subquery()
        return _paged(select(merged).order_by(merged.c.created_at.desc(), merged.c.id.desc()))
    return _page_statement(shape, channel="channel" if shape.channel else None, statuses=shape.statuses)


def _page_statement(
    shape: _HistoryShape, *, channel: str | None, status: str | None = None, statuses: int = 0
) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [messages.c.company_id == bindparam("company_id")]
    if channel is not None:
        conditions.append(messages.c.channel == bindparam(channel))
    if status is not None:
        conditions.append(messages.c.status == bindparam(status))
    if statuses:
        conditions.append(messages.c.status.in_([bindparam(f"status_{n}") for n in range(statuses)]))
    if shape.to:
        conditions.append(messages.c.to_number == bindparam("to"))
    if shape.start:
        conditions.append(messages.c.created_at >= bindparam("start"))
    if shape.end:
        conditions.append(messages.c.created_at < bindparam("end"))
    if shape.after:
        # Written out rather than as a row-value comparison: `created_at <= x` is a plain range
        # bound every planner turns into an index seek.
        conditions.append(messages.c.created_at <= bindparam("after_at"))
        conditions.append(
            or_(
                messages.c.created_at < bindparam("after_at"),
                and_(messages.c.created_at == bindparam("after_at"), messages.c.id < bindparam("after_id")),
            )
        )
    statement = select(*STATUS_COLUMNS).where(*conditions)
    return _paged(statement.order_by(messages.c.created_at.desc(), messages.c.id.desc()))


def _paged(statement: Select[Any]) -> Select[Any]:
    # OFFSET too is a named parameter (always 0): SQLite's dialect writes one in any case, and an
    # unnamed one would not be in the values.
    return statement.limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer))


_TIMELINE = (
    select(
        message_events.c.occurred_at,
        message_events.c.recorded_at,
        message_events.c.source,
        message_events.c.status,
        message_events.c.raw_state,
        message_events.c.description,
        message_events.c.error_code,
    )
    .where(message_events.c.message_id == bindparam("message_id"))
    .order_by(message_events.c.id)  # the order we learned them: provider clocks are coarse
)


async def timeline(connection: AsyncConnection, message_id: str, accepted_at: int) -> list[MessageEvent]:
    """A message's timeline, oldest first, whoever's it is (callers check whose it is); no entry
    before `accepted_at`, the message's creation (MessageEvent.at_or_after)."""
    return [
        MessageEvent(
            occurred_at, recorded_at, source, _STATUSES[status] if status else None, raw, text, code
        ).at_or_after(accepted_at)
        for occurred_at, recorded_at, source, status, raw, text, code in await connection.execute(
            _TIMELINE, {"message_id": message_id}
        )
    ]
