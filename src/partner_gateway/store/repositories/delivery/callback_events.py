"""What a status change writes for its callback (SPEC §5): one event, in the change's transaction.

`Statuses` (status_batch.py) notes a `Change` for every change of a message that has somewhere
to send it (its own callbackUrl, or its company's default URL, read with the status), with the
change counter's new value as its `sequence`. `record_changes` reads those messages' other
fields once and stores one `callback_events` row per change, with the body rendered now: the
exact bytes every attempt sends (domain/wire.py: `status_item`, the API's shape, plus the event's
fields by `callback_body`). A batch with no such change
spends nothing here.

A sender in a process of its own (callbacks/sender_process.py) takes nothing in memory: it
claims the events from the store, and is only woken once they are committed (`take_fresh` with
none), so it claims them at once instead of at its next poll.

When the writing process runs a callback sender (`Database.handoff`, callbacks/sender.py), the
events it has room for are inserted already claimed by it (`claimed_until` its lease, in the
INSERT) and handed to it in memory once the transaction commits: a fresh event costs no claim
SELECT and no claim UPDATE. A rollback hands nothing over (after_commit); a process that dies
before sending leaves them claimed, retaken when the lease ends (or at the embedded start), as a
claimed event always was. Other processes' senders skip them until then, so two senders never
both send a fresh event within its lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, cast

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from ulid import ULID

from partner_gateway.domain.statuses import CHANNEL_BY_NAME, DeliveryStatus
from partner_gateway.domain.wire import callback_body, status_item
from partner_gateway.store.bulk import Rows
from partner_gateway.store.commit_hooks import HANDED, HANDOFF, after_commit
from partner_gateway.store.tables import callback_events, callback_settings, messages

EVENT_ID_PREFIX = "evt_"
PENDING = "pending"
DELIVERED = "delivered"
GIVEN_UP = "given_up"

# Whether a change of the message is an event: it has its own callbackUrl, or its company a
# default URL. The status batches read it with the status, in the same statement (outer-joined to
# callback_settings): a message without a target costs one primary-key probe and nothing else.
HAS_TARGET = (messages.c.callback_url.is_not(None) | callback_settings.c.url.is_not(None)).label("targeted")


@dataclass(frozen=True, slots=True)
class Change:
    """A message right after one of its changes, as the status batch holds it."""

    message_id: str
    sequence: int
    status: DeliveryStatus
    description: str
    error_code: str | None
    read_at: int | None
    updated_at: int | None
    """The change's time when it (or an earlier change of this batch) set the status; None for a
    read receipt alone, which keeps the stored updatedAt (SPEC §3.2: the last status change)."""


@dataclass(frozen=True, slots=True)
class DueEvent:
    """A claimed event, with the URL it goes to now (its message's, or the company's default)."""

    id: str
    company_id: str
    message_id: str
    url: str | None
    body: bytes
    attempts: int
    pending_since: int
    secrets_rotated_at: int | None = None
    """When the company's secret was last rotated, as claimed: a sender's cached secrets older
    than that are read again, so a callback right after a rotation carries the new signature."""


class Handoff(Protocol):
    """A sender in this process that takes fresh events in memory (callbacks/sender.py)."""

    @property
    def lease_ms(self) -> int: ...

    def room(self) -> int:
        """How many fresh events it takes now."""
        ...

    def take_fresh(self, events: list[DueEvent]) -> None:
        """Once a transaction that wrote events has committed: those of them inserted claimed
        by it (none when it had no room, or takes none, as a sender process of its own)."""
        ...


def new_event_id(now: int) -> str:
    return EVENT_ID_PREFIX + str(ULID.from_timestamp(now))


_MESSAGE_FIELDS = (
    select(
        messages.c.id,
        messages.c.company_id,
        messages.c.channel,
        messages.c.to_number,
        messages.c.reference,
        messages.c.created_at,
        messages.c.updated_at,
        messages.c.encoding,
        messages.c.segments,
        messages.c.callback_url,
        messages.c.fallback_for,
        messages.c.fallback_sms,
        callback_settings.c.url,
        callback_settings.c.rotated_at,
    )
    .select_from(
        messages.outerjoin(callback_settings, callback_settings.c.company_id == messages.c.company_id)
    )
    .where(messages.c.id.in_(bindparam("ids", expanding=True)))
)

_EVENT_COLUMNS = (
    "id", "company_id", "message_id", "sequence", "occurred_at", "url", "body", "state",
    "attempts", "next_attempt_at", "claimed_until", "pending_since",
)  # fmt: skip
_INSERT_EVENTS = Rows(insert(callback_events), _EVENT_COLUMNS)


async def record_changes(connection: AsyncConnection, changes: Sequence[Change], now: int) -> None:
    """One pending callback event per change, due now. Run before the status update (a read
    receipt's snapshot keeps the updatedAt stored)."""
    if not changes:
        return
    fields: dict[str, Any] = {
        row[0]: row
        for row in await connection.execute(_MESSAGE_FIELDS, {"ids": list({c.message_id for c in changes})})
    }
    handoff = cast("Handoff | None", connection.info.get(HANDOFF))
    already: int = connection.info.get(HANDED, 0)
    room = handoff.room() - already if handoff is not None else 0
    lease_until = now + handoff.lease_ms if handoff is not None else None
    rows = []
    handed: list[DueEvent] = []
    for change in changes:
        (message_id, company_id, channel, to, reference, created_at, updated_at, encoding, segments, url,
         fallback_for, fallback_sms, default_url, rotated_at) = fields[change.message_id]  # fmt: skip
        event_id = new_event_id(now)
        status = status_item(
            message_id,
            CHANNEL_BY_NAME[channel],
            to,
            reference,
            change.status,
            change.description,
            change.error_code,
            created_at,
            change.updated_at if change.updated_at is not None else updated_at,
            change.read_at,
            encoding,
            segments,
            fallback_for,
            fallback_sms,
        )
        body = callback_body(status, event_id=event_id, occurred_at=now, sequence=change.sequence)
        claimed = None
        if len(handed) < room:
            claimed = lease_until
            handed.append(
                DueEvent(event_id, company_id, message_id, url or default_url, body, 0, now, rotated_at)
            )
        rows.append(
            (event_id, company_id, message_id, change.sequence, now, url, body.decode(), PENDING, 0, now,
             claimed, now)
        )  # fmt: skip
    await _INSERT_EVENTS.execute(connection, rows)
    if handoff is not None:
        if handed:
            connection.info[HANDED] = already + len(handed)
        after_commit(connection, partial(handoff.take_fresh, handed))
