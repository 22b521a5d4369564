"""Inbound messages: the numbers companies own, storing what users sent (once), its callback
event, the opt-out lists, and the inbound list's keyset pages.

`store_inbound` runs in the process's group commit (dispatch/inbound.py): for each message the
owner of its recipient (one primary-key look-up), then one INSERT that skips a duplicate
(`UNIQUE (channel, dedup_key)`), then, for a stored one, its callback event (`callback_events`,
the status events' table and sender: signed and retried the same way) when the company has a
default callback URL, and an opt-out or opt-in when its text is a keyword.

A mobile-originated SMS carries no id of its own, so its key is a hash of what it carries with
the 10-minute window it arrived in; the window before is checked too, so a carrier's
redelivery within `SMS_DEDUP_WINDOW_MS` is stored once while the same words sent again later
are a new message. A concatenated SMS's parts wait in `inbound_parts` until all are there
(a part repeated is kept once); the last part's transaction joins and stores them. On
PostgreSQL that transaction first takes an advisory lock on the parts' group, so two workers
given the last two parts at once cannot both miss the whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import and_, delete, func, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.inbound import (
    InboundMessage,
    InboundMessageResponse,
    InboundPart,
    OptKeywords,
    display_number,
    inbound_callback_body,
    join_parts,
    new_inbound_id,
    normalize_number,
)
from partner_gateway.domain.messages import HistoryPosition
from partner_gateway.domain.statuses import CHANNEL_BY_NAME, Channel
from partner_gateway.domain.timefmt import format_ms
from partner_gateway.store.dialects import insert_skipping_duplicates
from partner_gateway.store.repositories.delivery.callback_events import PENDING, new_event_id
from partner_gateway.store.tables import (
    callback_events,
    callback_settings,
    company_numbers,
    inbound_messages,
    inbound_parts,
    opt_outs,
)

logger = logging.getLogger(__name__)

SMS_DEDUP_WINDOW_MS: Final = 10 * 60 * 1000
STALE_PARTS_MS: Final = 24 * 3600 * 1000
"""Parts of a concatenated SMS whose other parts have not come within a day are dropped."""

Outcome = Literal["stored", "duplicate", "unassigned", "part"]


@dataclass(frozen=True, slots=True)
class Stored:
    """What storing one inbound item did."""

    outcome: Outcome
    inbound_id: str | None = None
    company_id: str | None = None
    opt: str | None = None  # opt_out / opt_in when its text was a keyword


class NumberTaken(Exception):
    def __init__(self, owner: str) -> None:
        super().__init__(f"the number is assigned to company {owner}")
        self.owner = owner


# -- numbers -------------------------------------------------------------------------------------


async def owner_of(connection: AsyncConnection, channel: Channel, number: str) -> str | None:
    row = (
        await connection.execute(
            select(company_numbers.c.company_id).where(
                company_numbers.c.channel == channel.value,
                company_numbers.c.number == normalize_number(number),
            )
        )
    ).first()
    return None if row is None else str(row[0])


async def assign_number(
    connection: AsyncConnection, company_id: str, channel: Channel, number: str, now: int
) -> bool:
    """Assign `number`; False when the company had it already, NumberTaken for another's."""
    normal = normalize_number(number)
    owner = await owner_of(connection, channel, normal)
    if owner == company_id:
        return False
    if owner is not None:
        raise NumberTaken(owner)
    await connection.execute(
        insert(company_numbers).values(
            channel=channel.value, number=normal, company_id=company_id, created_at=now
        )
    )
    return True


async def release_number(connection: AsyncConnection, company_id: str, channel: Channel, number: str) -> bool:
    result = await connection.execute(
        delete(company_numbers).where(
            company_numbers.c.channel == channel.value,
            company_numbers.c.number == normalize_number(number),
            company_numbers.c.company_id == company_id,
        )
    )
    return bool(result.rowcount)


async def numbers_of(connection: AsyncConnection, company_id: str) -> list[tuple[str, str, int]]:
    """(channel, number, assigned at) of a company, by channel and number."""
    rows = await connection.execute(
        select(company_numbers.c.channel, company_numbers.c.number, company_numbers.c.created_at)
        .where(company_numbers.c.company_id == company_id)
        .order_by(company_numbers.c.channel, company_numbers.c.number)
    )
    return [(str(channel), str(number), int(created)) for channel, number, created in rows]


# -- opt-outs ------------------------------------------------------------------------------------


async def is_opted_out(connection: AsyncConnection, company_id: str, channel: Channel, number: str) -> bool:
    row = (
        await connection.execute(
            select(opt_outs.c.created_at).where(
                opt_outs.c.company_id == company_id,
                opt_outs.c.channel == channel.value,
                opt_outs.c.number == normalize_number(number),
            )
        )
    ).first()
    return row is not None


async def opt_out(
    connection: AsyncConnection, company_id: str, channel: Channel, number: str, source: str, now: int
) -> bool:
    """Add to the list; False when it was there already (its first time and source are kept)."""
    statement = insert_skipping_duplicates(connection.dialect.name, opt_outs)
    result = await connection.execute(
        statement,
        [
            {
                "company_id": company_id,
                "channel": channel.value,
                "number": normalize_number(number),
                "source": source,
                "created_at": now,
            }
        ],
    )
    return bool(result.rowcount)


async def opt_in(connection: AsyncConnection, company_id: str, channel: Channel, number: str) -> bool:
    result = await connection.execute(
        delete(opt_outs).where(
            opt_outs.c.company_id == company_id,
            opt_outs.c.channel == channel.value,
            opt_outs.c.number == normalize_number(number),
        )
    )
    return bool(result.rowcount)


@dataclass(frozen=True, slots=True)
class OptOutEntry:
    channel: Channel
    number: str
    source: str
    created_at: int


async def opt_outs_of(
    connection: AsyncConnection,
    company_id: str,
    channel: Channel | None,
    after: tuple[str, str] | None,
    limit: int,
    *,
    number: str | None = None,
) -> list[OptOutEntry]:
    """A page of the company's list, by channel then number, after `after` (channel, number);
    with `number`, that entry alone."""
    query = select(opt_outs.c.channel, opt_outs.c.number, opt_outs.c.source, opt_outs.c.created_at).where(
        opt_outs.c.company_id == company_id
    )
    if number is not None:
        query = query.where(opt_outs.c.number == number)
    if channel is not None:
        query = query.where(opt_outs.c.channel == channel.value)
    if after is not None:
        query = query.where(
            or_(
                opt_outs.c.channel > after[0],
                and_(opt_outs.c.channel == after[0], opt_outs.c.number > after[1]),
            )
        )
    rows = await connection.execute(query.order_by(opt_outs.c.channel, opt_outs.c.number).limit(limit))
    return [
        OptOutEntry(CHANNEL_BY_NAME.get(ch) or Channel(ch), str(number), str(source), int(created))
        for ch, number, source, created in rows
    ]


# -- storing what users sent ---------------------------------------------------------------------


def _sms_keys(key: str, received_at: int) -> tuple[str, str]:
    window = received_at // SMS_DEDUP_WINDOW_MS
    return f"{key}:{window}", f"{key}:{window - 1}"


async def _group_complete(connection: AsyncConnection, part: InboundPart) -> list[InboundPart] | None:
    """Keep the part; every part of its message once the last is here (and their rows deleted)."""
    group = hashlib.sha256(
        f"{part.provider}|{part.sender}|{part.recipient}|{part.reference}|{part.total}".encode()
    ).hexdigest()
    if connection.dialect.name == "postgresql":
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:group, 0))"), {"group": group}
        )
    await connection.execute(
        insert_skipping_duplicates(connection.dialect.name, inbound_parts),
        [
            {
                "group_key": group,
                "seq": part.seq,
                "total": part.total,
                "data_coding": part.data_coding,
                "payload": part.payload.hex(),
                "received_at": part.received_at,
            }
        ],
    )
    rows = (
        await connection.execute(
            select(
                inbound_parts.c.seq,
                inbound_parts.c.data_coding,
                inbound_parts.c.payload,
                inbound_parts.c.received_at,
            )
            .where(inbound_parts.c.group_key == group)
            .order_by(inbound_parts.c.seq)
        )
    ).all()
    if len(rows) < part.total:
        return None
    await connection.execute(delete(inbound_parts).where(inbound_parts.c.group_key == group))
    return [
        InboundPart(
            part.provider, part.sender, part.recipient, part.reference, part.total, int(seq), int(coding),
            bytes.fromhex(payload), int(received),
        )
        for seq, coding, payload, received in rows
    ]  # fmt: skip


async def drop_stale_parts(connection: AsyncConnection, now: int) -> int:
    result = await connection.execute(
        delete(inbound_parts).where(inbound_parts.c.received_at < now - STALE_PARTS_MS)
    )
    return int(result.rowcount or 0)


async def store_inbound(
    connection: AsyncConnection, item: InboundMessage | InboundPart, keywords: OptKeywords, now: int
) -> Stored:
    """Store one inbound message (or part) as the module's docstring says."""
    if isinstance(item, InboundPart):
        parts = await _group_complete(connection, item)
        if parts is None:
            return Stored("part")
        digest = hashlib.sha256(
            b"|".join(
                [item.provider.encode(), item.sender.encode(), item.recipient.encode()]
                + [p.payload for p in parts]
            )
        ).hexdigest()
        item = join_parts(parts, f"smpp:{digest}")
    company_id = await owner_of(connection, item.channel, item.recipient)
    if company_id is None:
        return Stored("unassigned")
    key = item.dedup_key
    if item.provider_message_id is None:  # an SMS: its content within a window
        key, previous = _sms_keys(key, item.received_at)
        seen = await connection.execute(
            select(inbound_messages.c.id).where(
                inbound_messages.c.channel == item.channel.value, inbound_messages.c.dedup_key == previous
            )
        )
        if seen.first() is not None:
            return Stored("duplicate")
    inbound_id = new_inbound_id(now)
    view = InboundMessageResponse(
        id=inbound_id,
        channel=item.channel,
        from_=item.sender,
        to=display_number(item.recipient),
        type=item.kind,
        text=item.text,
        received_at=format_ms(item.received_at),
        parts=item.parts,
        provider_message_id=item.provider_message_id,
    )
    result = await connection.execute(
        insert_skipping_duplicates(connection.dialect.name, inbound_messages),
        [
            {
                "id": inbound_id,
                "company_id": company_id,
                "channel": item.channel.value,
                "from_number": item.sender,
                "to_number": normalize_number(item.recipient),
                "kind": item.kind,
                "text": item.text,
                "received_at": item.received_at,
                "provider": item.provider,
                "provider_message_id": item.provider_message_id,
                "parts": item.parts,
                "raw": json.dumps(list(item.raw), separators=(",", ":")),
                "dedup_key": key[:200],
            }
        ],
    )
    if not result.rowcount:
        return Stored("duplicate")
    has_url = (
        await connection.execute(
            select(callback_settings.c.url).where(
                callback_settings.c.company_id == company_id, callback_settings.c.url.is_not(None)
            )
        )
    ).first()
    if has_url is not None:
        event_id = new_event_id(now)
        body = inbound_callback_body(view, event_id=event_id, occurred_at=format_ms(now))
        await connection.execute(
            insert(callback_events).values(
                id=event_id,
                company_id=company_id,
                message_id=inbound_id,
                sequence=1,
                occurred_at=now,
                url=None,  # the company's default URL as it is at each attempt
                body=body.decode(),
                state=PENDING,
                attempts=0,
                next_attempt_at=now,
                pending_since=now,
            )
        )
    action = keywords.action(item.text) if item.kind == "text" else None
    if action == "opt_out":
        await opt_out(connection, company_id, item.channel, item.sender, "keyword", now)
    elif action == "opt_in":
        await opt_in(connection, company_id, item.channel, item.sender)
    return Stored("stored", inbound_id, company_id, action)


# -- the inbound list ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundFilter:
    company_id: str
    start: int | None = None
    end: int | None = None
    channel: Channel | None = None
    sender: str | None = None
    recipient: str | None = None


async def inbound_page(
    connection: AsyncConnection, filters: InboundFilter, after: HistoryPosition | None, size: int
) -> tuple[list[InboundMessageResponse], HistoryPosition | None]:
    """Newest first, ties by id; one more row read to know whether a page follows."""
    table = inbound_messages.c
    query = select(
        table.id, table.channel, table.from_number, table.to_number, table.kind, table.text,
        table.received_at, table.parts, table.provider_message_id,
    ).where(table.company_id == filters.company_id)  # fmt: skip
    conditions: list[Any] = []
    if filters.channel is not None:
        conditions.append(table.channel == filters.channel.value)
    if filters.sender is not None:
        conditions.append(table.from_number == filters.sender)
    if filters.recipient is not None:
        conditions.append(table.to_number == normalize_number(filters.recipient))
    if filters.start is not None:
        conditions.append(table.received_at >= filters.start)
    if filters.end is not None:
        conditions.append(table.received_at < filters.end)
    if after is not None:
        conditions.append(table.received_at <= after.created_at)
        conditions.append(or_(table.received_at < after.created_at, table.id < after.message_id))
    rows = (
        await connection.execute(
            query.where(*conditions).order_by(table.received_at.desc(), table.id.desc()).limit(size + 1)
        )
    ).all()
    next_after = None
    if len(rows) > size:
        rows = rows[:size]
        next_after = HistoryPosition(created_at=int(rows[-1][6]), message_id=str(rows[-1][0]))
    items = [
        InboundMessageResponse(
            id=str(row[0]),
            channel=CHANNEL_BY_NAME.get(row[1]) or Channel(row[1]),
            from_=str(row[2]),
            to=display_number(str(row[3])),
            type=str(row[4]),
            text=str(row[5]),
            received_at=format_ms(int(row[6])),
            parts=int(row[7]),
            provider_message_id=row[8],
        )
        for row in rows
    ]
    return items, next_after


async def count_for(connection: AsyncConnection, company_id: str) -> int:
    return int(
        (
            await connection.execute(select(func.count()).where(inbound_messages.c.company_id == company_id))
        ).scalar_one()
    )
