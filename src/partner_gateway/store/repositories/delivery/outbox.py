"""The outbox: each accepted message's work item, from queued to handed over.

An item moves through `OutboxState`; a lease (`lease_until`) bounds how long a worker or the
relay may hold it before it counts as abandoned::

    queued ──claim_due──────────────▶ claimed ──mark_written──▶ written ──finish──▶ (deleted)
      │                                 ▲ │                       │
      └─take_for_publishing─▶ published ┘ └─reschedule──▶ queued  └─lease lapsed──▶ claimed,
           (the relay, RabbitMQ)    claim_published                  returned as ambiguous

    claimed or published, lease lapsed ──release_expired_claims──▶ queued
    published, the publish failed ──unpublish──▶ queued
    claimed, its worker stopping before the write ──hand_back──▶ queued
    claimed, not held by the store's only worker ──release_unheld──▶ queued
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, bindparam, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from partner_gateway.domain.statuses import CHANNEL_BY_NAME, Channel
from partner_gateway.store.tables import messages, opt_outs, outbox


class OutboxState(StrEnum):
    """An outbox item's state, stored as its value (outbox.state)."""

    QUEUED = "queued"  # waiting until available_at
    PUBLISHED = "published"  # handed to the queue by the relay; a worker claims it from there
    CLAIMED = "claimed"  # a worker holds it until lease_until; nothing written to a provider yet
    WRITTEN = "written"  # durably marked just before the provider write: it may have been sent


# Built once, with their lists as expanding parameters: building and keying a statement per
# call cost more than running it.
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)


# How long a worker holds an unanswered hand-over it took back while it decides what to do with it.
_AMBIGUOUS_LEASE_MS = 60_000


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    outbox_id: int
    attempts: int
    parts_done: int
    message_id: str
    company_id: str
    channel: Channel
    to: str
    sender: str | None
    body: str
    created_at: int
    expires_at: int
    # The destination is on its company's opt-out list for the channel (read with the claim):
    # the hand-over ends it ERROR gw:opted-out before any provider sees it.
    opted_out: bool = False


_CLAIMED_COLUMNS = (outbox.c.id, outbox.c.message_id, outbox.c.attempts, outbox.c.parts_done)
"""What a claim returns, for `_with_messages` to make ClaimedItems of."""


def _due(now: int, limit: int) -> Select[Any]:
    """The ids of up to `limit` queued items due at `now`, oldest first, that no one else is
    taking at this moment (PostgreSQL skips the rows another claim has locked)."""
    return (
        select(outbox.c.id)
        .where(outbox.c.state == OutboxState.QUEUED, outbox.c.available_at <= now)
        .order_by(outbox.c.available_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


async def claim_due(
    connection: AsyncConnection, now: int, limit: int, lease_ms: int, channels: Sequence[Channel]
) -> list[ClaimedItem]:
    """Take up to `limit` due items for this worker until `now + lease_ms`."""
    due = _due(now, limit).where(outbox.c.channel.in_([channel.value for channel in channels]))
    claimed = (
        await connection.execute(
            update(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(state=OutboxState.CLAIMED, lease_until=now + lease_ms, attempts=outbox.c.attempts + 1)
            .returning(*_CLAIMED_COLUMNS)
        )
    ).all()
    if not claimed:
        return []
    return await _with_messages(connection, claimed)


# ClaimedItem's message fields, in its order, read by position (`select(messages)` read every
# column, by name).
_SELECT_MESSAGES = select(
    messages.c.id,
    messages.c.company_id,
    messages.c.channel,
    messages.c.to_number,
    messages.c.sender,
    messages.c.body,
    messages.c.created_at,
    messages.c.expires_at,
    # One primary-key probe per message; opt_outs keeps the number without its "+" (to_number
    # is E.164, validated at acceptance).
    exists()
    .where(
        opt_outs.c.company_id == messages.c.company_id,
        opt_outs.c.channel == messages.c.channel,
        opt_outs.c.number == func.substr(messages.c.to_number, 2),
    )
    .label("opted_out"),
).where(messages.c.id.in_(_IDS))


async def _with_messages(connection: AsyncConnection, claimed: Sequence[Any]) -> list[ClaimedItem]:
    """Claimed outbox rows (_CLAIMED_COLUMNS) joined with their messages."""
    # message id -> (outbox id, attempts, parts done): ClaimedItem's first three fields
    by_message = {row[1]: (row[0], row[2], row[3]) for row in claimed}
    rows = await connection.execute(_SELECT_MESSAGES, {"ids": list(by_message)})
    items = [
        ClaimedItem(
            *by_message[message_id],
            message_id,
            company_id,
            CHANNEL_BY_NAME[channel],
            to,
            sender,
            body,
            created_at,
            expires_at,
            bool(opted_out),
        )
        for message_id, company_id, channel, to, sender, body, created_at, expires_at, opted_out in rows
    ]
    return sorted(items, key=lambda item: item.outbox_id)


async def take_for_publishing(
    connection: AsyncConnection, now: int, limit: int, lease_ms: int
) -> list[tuple[int, str, str, int]]:
    """The relay's claim: due items become `published` until `now + lease_ms` (then, if no worker
    took them, they are due again). Returns (outbox id, message id, channel, attempts)."""
    rows = (
        await connection.execute(
            update(outbox)
            .where(outbox.c.id.in_(_due(now, limit).scalar_subquery()))
            .values(state=OutboxState.PUBLISHED, lease_until=now + lease_ms)
            .returning(outbox.c.id, outbox.c.message_id, outbox.c.channel, outbox.c.attempts)
        )
    ).all()
    return [(row.id, row.message_id, row.channel, row.attempts) for row in rows]


async def unpublish(connection: AsyncConnection, outbox_ids: Sequence[int]) -> None:
    """The publish failed: the items are due again."""
    await connection.execute(
        update(outbox)
        .where(outbox.c.id.in_(list(outbox_ids)), outbox.c.state == OutboxState.PUBLISHED)
        .values(state=OutboxState.QUEUED, lease_until=None)
    )


_CLAIM_PUBLISHED = (
    update(outbox)
    .where(outbox.c.id.in_(_IDS), outbox.c.state == OutboxState.PUBLISHED)
    .values(state=OutboxState.CLAIMED, lease_until=bindparam("until"), attempts=outbox.c.attempts + 1)
    .returning(*_CLAIMED_COLUMNS)
)


async def hand_back(connection: AsyncConnection, outbox_ids: Sequence[int]) -> None:
    """A stopping worker gives back items it claimed and never wrote to a provider: due again
    at once, the claim's attempt not counted. An item already `written` is left to its lease."""
    await connection.execute(
        update(outbox)
        .where(outbox.c.id.in_(list(outbox_ids)), outbox.c.state == OutboxState.CLAIMED)
        .values(state=OutboxState.QUEUED, lease_until=None, attempts=outbox.c.attempts - 1)
    )


async def release_unheld(connection: AsyncConnection, held: Sequence[int]) -> int:
    """The only worker on this store takes back the claims it is not handing over: claims whose
    commit it never heard of (the connection was lost as they committed). Their attempt is not
    counted. Returns how many."""
    result = await connection.execute(
        update(outbox)
        .where(outbox.c.state == OutboxState.CLAIMED, outbox.c.id.not_in(list(held)))
        .values(state=OutboxState.QUEUED, lease_until=None, attempts=outbox.c.attempts - 1)
    )
    return int(result.rowcount or 0)


async def claim_published(
    connection: AsyncConnection, outbox_ids: Sequence[int], now: int, lease_ms: int
) -> dict[int, ClaimedItem]:
    """A worker takes published items it received from the queue, by outbox id; an item another
    worker has already, or that is done (a redelivered or duplicate queue message), is left out."""
    claimed = (
        await connection.execute(_CLAIM_PUBLISHED, {"ids": list(outbox_ids), "until": now + lease_ms})
    ).all()
    if not claimed:
        return {}
    return {item.outbox_id: item for item in await _with_messages(connection, claimed)}


async def renew_leases(connection: AsyncConnection, outbox_ids: Sequence[int], until: int) -> None:
    await connection.execute(
        update(outbox)
        .where(
            outbox.c.id.in_(list(outbox_ids)),
            outbox.c.state.in_([OutboxState.CLAIMED, OutboxState.WRITTEN]),
        )
        .values(lease_until=until)
    )


_MARK_WRITTEN = update(outbox).where(outbox.c.id.in_(_IDS)).values(state=OutboxState.WRITTEN)


async def mark_written(connection: AsyncConnection, outbox_ids: Sequence[int]) -> None:
    await connection.execute(_MARK_WRITTEN, {"ids": list(outbox_ids)})


async def release_expired_claims(connection: AsyncConnection, now: int) -> list[ClaimedItem]:
    """Put claims whose worker vanished back in the queue; return the ambiguous ones.

    A claimed item was never written to a provider: it is simply queued again. A written one
    may or may not have reached the provider: the caller decides what to do with it.
    """
    await connection.execute(
        update(outbox)
        .where(outbox.c.state.in_([OutboxState.CLAIMED, OutboxState.PUBLISHED]), outbox.c.lease_until < now)
        .values(state=OutboxState.QUEUED, lease_until=None)
    )
    stale = (
        await connection.execute(
            update(outbox)
            .where(outbox.c.state == OutboxState.WRITTEN, outbox.c.lease_until < now)
            .values(state=OutboxState.CLAIMED, lease_until=now + _AMBIGUOUS_LEASE_MS)
            .returning(*_CLAIMED_COLUMNS)
        )
    ).all()
    if not stale:
        return []
    return await _with_messages(connection, stale)


async def reschedule(
    connection: AsyncConnection, outbox_id: int, available_at: int, error: str, parts_done: int
) -> None:
    """Queue the item again from `available_at`, remembering the error and the parts accepted."""
    await connection.execute(
        update(outbox)
        .where(outbox.c.id == outbox_id)
        .values(
            state=OutboxState.QUEUED,
            lease_until=None,
            available_at=available_at,
            last_error=error[:300],
            parts_done=parts_done,
        )
    )


_FINISH = delete(outbox).where(outbox.c.id.in_(_IDS))


async def finish(connection: AsyncConnection, outbox_ids: Sequence[int]) -> None:
    """The items' outcomes are recorded: they leave the outbox."""
    await connection.execute(_FINISH, {"ids": list(outbox_ids)})
