"""The delivery pipeline's queries: the outbox, message parts, reports and status changes.

Every function runs inside the caller's write transaction (see store/batching.py), so a
status change, its timeline entry and the outbox change commit together.

The writes every message needs (record_submissions, apply_gateway_reports,
apply_provider_reports, mark_written, finish) take many messages at once: the group commit runs
each once per batch, a few statements for all of its messages, with the outcome of running them
one by one. Their multi-row statements hand the driver plain tuples (store/bulk.py).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Select, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter

from partner_gateway.domain.lifecycle import CurrentState, PartState, Report, aggregate, decide
from partner_gateway.domain.statuses import CHANNEL_BY_NAME, Channel, DeliveryStatus, Rank
from partner_gateway.store.bulk import InsertReturning, Rows
from partner_gateway.store.tables import (
    message_events,
    message_parts,
    messages,
    outbox,
    pending_reports,
    unconfirmed_handovers,
)

# The statements every batch runs are built once, with their lists as expanding parameters:
# building and keying a statement per call cost more than running it.
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)

# Stored values to their members by dictionary look-up: Channel(value) and the like cost several
# times more, for every row a batch reads.
_CHANNELS = CHANNEL_BY_NAME
_STATUSES = {status.value: status for status in DeliveryStatus}
_RANKS = {int(rank): rank for rank in Rank}


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


@dataclass(frozen=True, slots=True)
class PartRecord:
    part_no: int
    parts_total: int
    provider_message_id: str
    provider_key: str


@dataclass(frozen=True, slots=True)
class GatewayReport:
    """A status change the gateway decides itself (submitted, rejected, expired, ...)."""

    status: DeliveryStatus
    description: str
    raw_state: str
    dedup_key: str
    error_code: str | None = None
    queued: bool = False


async def claim_due(
    connection: AsyncConnection, now: int, limit: int, lease_ms: int, channels: Sequence[Channel]
) -> list[ClaimedItem]:
    """Take up to `limit` due items for this worker until `now + lease_ms`."""
    due = (
        select(outbox.c.id)
        .where(
            outbox.c.state == "queued",
            outbox.c.available_at <= now,
            outbox.c.channel.in_([channel.value for channel in channels]),
        )
        .order_by(outbox.c.available_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (
        await connection.execute(
            update(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(state="claimed", lease_until=now + lease_ms, attempts=outbox.c.attempts + 1)
            .returning(outbox.c.id, outbox.c.message_id, outbox.c.attempts, outbox.c.parts_done)
        )
    ).all()
    if not claimed:
        return []
    return await _with_messages(connection, claimed)


_SELECT_MESSAGES = select(messages).where(messages.c.id.in_(_IDS))


async def _with_messages(connection: AsyncConnection, claimed: Sequence[Any]) -> list[ClaimedItem]:
    """Claimed outbox rows (id, message_id, attempts, parts_done) joined with their messages."""
    # message id -> (outbox id, attempts, parts done): ClaimedItem's first three fields
    by_message = {row[1]: (row[0], row[2], row[3]) for row in claimed}
    rows = await connection.execute(_SELECT_MESSAGES, {"ids": list(by_message)})
    items = [
        ClaimedItem(
            *by_message[row.id],
            message_id=row.id,
            company_id=row.company_id,
            channel=_CHANNELS[row.channel],
            to=row.to_number,
            sender=row.sender,
            body=row.body,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )
        for row in rows
    ]
    return sorted(items, key=lambda item: item.outbox_id)


async def take_for_publishing(
    connection: AsyncConnection, now: int, limit: int, lease_ms: int
) -> list[tuple[int, str, str, int]]:
    """The relay's claim: due items become `published` until `now + lease_ms` (then, if no worker
    took them, they are due again). Returns (outbox id, message id, channel, attempts)."""
    due = (
        select(outbox.c.id)
        .where(outbox.c.state == "queued", outbox.c.available_at <= now)
        .order_by(outbox.c.available_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = (
        await connection.execute(
            update(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(state="published", lease_until=now + lease_ms)
            .returning(outbox.c.id, outbox.c.message_id, outbox.c.channel, outbox.c.attempts)
        )
    ).all()
    return [(row.id, row.message_id, row.channel, row.attempts) for row in rows]


async def unpublish(connection: AsyncConnection, outbox_ids: Sequence[int]) -> None:
    """The publish failed: the items are due again."""
    await connection.execute(
        update(outbox)
        .where(outbox.c.id.in_(list(outbox_ids)), outbox.c.state == "published")
        .values(state="queued", lease_until=None)
    )


_CLAIM_PUBLISHED = (
    update(outbox)
    .where(outbox.c.id.in_(_IDS), outbox.c.state == "published")
    .values(state="claimed", lease_until=bindparam("until"), attempts=outbox.c.attempts + 1)
    .returning(outbox.c.id, outbox.c.message_id, outbox.c.attempts, outbox.c.parts_done)
)


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
        .where(outbox.c.id.in_(list(outbox_ids)), outbox.c.state.in_(["claimed", "written"]))
        .values(lease_until=until)
    )


_MARK_WRITTEN = update(outbox).where(outbox.c.id.in_(_IDS)).values(state="written")


async def mark_written(connection: AsyncConnection, outbox_ids: Sequence[int]) -> None:
    await connection.execute(_MARK_WRITTEN, {"ids": list(outbox_ids)})


async def release_expired_claims(connection: AsyncConnection, now: int) -> list[ClaimedItem]:
    """Put claims whose worker vanished back in the queue; return the ambiguous ones.

    A claimed item was never written to a provider: it is simply queued again. A written one
    may or may not have reached the provider: the caller decides what to do with it.
    """
    await connection.execute(
        update(outbox)
        .where(outbox.c.state.in_(["claimed", "published"]), outbox.c.lease_until < now)
        .values(state="queued", lease_until=None)
    )
    stale = (
        await connection.execute(
            update(outbox)
            .where(outbox.c.state == "written", outbox.c.lease_until < now)
            .values(state="claimed", lease_until=now + 60_000)
            .returning(outbox.c.id, outbox.c.message_id, outbox.c.attempts, outbox.c.parts_done)
        )
    ).all()
    if not stale:
        return []
    return await _with_messages(connection, stale)


async def reschedule(
    connection: AsyncConnection, outbox_id: int, available_at: int, error: str, parts_done: int
) -> None:
    await connection.execute(
        update(outbox)
        .where(outbox.c.id == outbox_id)
        .values(
            state="queued",
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


@dataclass(frozen=True, slots=True)
class Submission:
    """A message's parts a provider accepted."""

    message_id: str
    provider: str
    parts: Sequence[PartRecord]


async def record_parts(
    connection: AsyncConnection, message_id: str, provider: str, parts: Sequence[PartRecord], now: int
) -> None:
    """Record the provider's ids of accepted parts (status SENT); a part recorded before is left
    as it is."""
    await record_submissions(connection, [Submission(message_id, provider, parts)], now)


async def record_submissions(
    connection: AsyncConnection, submissions: Sequence[Submission], now: int
) -> None:
    """`record_parts` for many messages: one statement."""
    sent, rank = DeliveryStatus.SENT.value, int(Rank.SENT)
    rows = [
        (
            submission.message_id,
            part.part_no,
            part.parts_total,
            submission.provider,
            part.provider_message_id,
            part.provider_key,
            sent,
            rank,
            "Accepted by the provider",
            now,
            now,
        )
        for submission in submissions
        for part in submission.parts
    ]
    await _new_parts(connection.dialect.name).execute(connection, rows)


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """A status the gateway decided for a message, and who it came from (a provider's answer)."""

    message_id: str
    report: GatewayReport
    source: str = "gateway"


async def apply_gateway_report(
    connection: AsyncConnection, message_id: str, report: GatewayReport, now: int, source: str = "gateway"
) -> bool:
    """Record a status the gateway decided; True when it changed the message."""
    return (await apply_gateway_reports(connection, [GatewayStatus(message_id, report, source)], now))[0]


async def apply_gateway_reports(
    connection: AsyncConnection, statuses: Sequence[GatewayStatus], now: int
) -> list[bool]:
    """`apply_gateway_report` for many, in order: four statements, whatever their number."""
    inserted = await _insert_events(
        connection,
        [
            _event(
                item.message_id,
                occurred_at=now,
                recorded_at=now,
                source=item.source,
                status=item.report.status,
                raw_state=item.report.raw_state,
                description=item.report.description,
                error_code=item.report.error_code,
                dedup_key=item.report.dedup_key,
            )
            for item in statuses
        ],
    )
    messages_ = _Statuses(connection, now)
    await messages_.load(item.message_id for item, new in zip(statuses, inserted, strict=True) if new)
    changed = []
    for item, new in zip(statuses, inserted, strict=True):
        report = item.report
        changed.append(
            new
            and await messages_.apply(
                item.message_id,
                Report(report.status, report.description, report.error_code, queued=report.queued),
                read_at=None,
            )
        )
    await messages_.write()
    return changed


@dataclass(frozen=True, slots=True)
class ProviderReport:
    """A provider's report, resolved to a part of a known message."""

    provider: str
    provider_key: str | None
    message_id: str | None
    status: DeliveryStatus | None
    raw_state: str
    description: str
    error_code: str | None
    occurred_at: int
    dedup_key: str
    is_read: bool
    payload: Callable[[], dict[str, Any]]  # the whole report, made only if it has to wait for its submission
    destination: str | None = None  # where the provider says the message went (digits)
    text_excerpt: str | None = None  # how the provider says it began


async def apply_provider_report(connection: AsyncConnection, report: ProviderReport, now: int) -> str:
    """Apply one provider report. Returns 'applied', 'duplicate' or 'pending' (no part yet)."""
    return (await apply_provider_reports(connection, [report], now))[0]


async def apply_provider_reports(
    connection: AsyncConnection, reports: Sequence[ProviderReport], now: int
) -> list[str]:
    """Apply provider reports in order, as if one by one; 'applied', 'duplicate' or 'pending'
    (no part yet) for each. A handful of statements, whatever their number: the parts and messages
    are read once, changed in memory report by report, and written back once."""
    messages_ = _Statuses(connection, now)
    parts = _Parts(connection, messages_)
    await parts.find(reports)
    for report in reports:
        # Rare: a carrier id no submission has. It may be that of a hand-over that got no answer.
        if (
            parts.of(report) is None
            and report.provider_key is not None
            and await _adopt_for_unconfirmed(connection, report, now)
        ):
            await parts.find([report])
    outcomes = ["pending"] * len(reports)
    found: list[tuple[int, ProviderReport, _Part]] = []
    parked: list[dict[str, Any]] = []
    for index, report in enumerate(reports):
        part = parts.of(report)
        if part is not None:
            found.append((index, report, part))
        elif report.provider_key is not None:
            # Kept until its submission is recorded (take_pending, take_pending_with_parts).
            parked.append(
                {
                    "provider": report.provider,
                    "provider_key": report.provider_key,
                    "dedup_key": report.dedup_key,
                    "report": json.dumps(report.payload()),
                    "received_at": now,
                    "destination": report.destination,
                    "text_excerpt": report.text_excerpt,
                }
            )
    if parked:
        await connection.execute(_insert_new(connection.dialect.name, pending_reports), parked)
    inserted = await _insert_events(
        connection,
        [
            _event(
                part.message_id,
                occurred_at=report.occurred_at,
                recorded_at=now,
                source=report.provider,
                status=report.status,
                raw_state=report.raw_state,
                description=report.description
                if part.parts_total == 1
                else f"{report.description} (part {part.part_no})",
                error_code=report.error_code,
                dedup_key=report.dedup_key,
            )
            for _index, report, part in found
        ],
    )
    changing = [
        (index, report, part)
        for (index, report, part), new in zip(found, inserted, strict=True)
        if new and report.status is not None
    ]
    await parts.load_messages({part.message_id for _, _, part in changing if part.parts_total > 1})
    for (index, _report, _part), new in zip(found, inserted, strict=True):
        outcomes[index] = "applied" if new else "duplicate"
    for _index, report, part in changing:
        assert report.status is not None
        transition = decide(
            CurrentState(part.status, part.rank),
            Report(report.status, report.description, report.error_code, is_read=report.is_read),
        )
        if transition.changes_status:
            part.status, part.rank = report.status, transition.new_rank
            part.description, part.error_code = report.description, report.error_code
            part.status_changed = True
        if transition.sets_read and part.read_at is None:
            part.read_at = report.occurred_at
            part.read_changed = True
        overall = aggregate(parts.states(part.message_id, part.parts_total))
        await messages_.apply(
            part.message_id,
            Report(
                overall.status, overall.description, overall.error_code, queued=overall.rank is Rank.QUEUED
            ),
            read_at=report.occurred_at if transition.sets_read else None,
        )
    await parts.write(now)
    await messages_.write()
    return outcomes


_SELECT_PENDING = select(pending_reports.c.id, pending_reports.c.report).where(
    pending_reports.c.provider == bindparam("provider"), pending_reports.c.provider_key.in_(_KEYS)
)


async def take_pending(
    connection: AsyncConnection, provider: str, provider_keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Reports that waited for these parts; removed as they are handed back for applying."""
    rows = (
        await connection.execute(_SELECT_PENDING, {"provider": provider, "keys": list(provider_keys)})
    ).all()
    if rows:
        await connection.execute(
            delete(pending_reports).where(pending_reports.c.id.in_([row.id for row in rows]))
        )
    return [json.loads(row.report) for row in rows]


async def take_pending_with_parts(connection: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """Reports parked while their submission was being recorded in another process's
    transaction: under READ COMMITTED the receipt's look-up and the submission's `take_pending`
    can each miss the other's uncommitted row. The part exists now; hand them back for applying."""
    rows = (
        await connection.execute(
            select(pending_reports.c.id, pending_reports.c.report)
            .join(
                message_parts,
                (message_parts.c.provider == pending_reports.c.provider)
                & (message_parts.c.provider_key == pending_reports.c.provider_key),
            )
            .order_by(pending_reports.c.id)
            .limit(limit)
            # Two workers sweeping at once take different reports (PostgreSQL; SQLite ignores it).
            .with_for_update(of=pending_reports, skip_locked=True)
        )
    ).all()
    if rows:
        await connection.execute(
            delete(pending_reports).where(pending_reports.c.id.in_([row.id for row in rows]))
        )
    return [json.loads(row.report) for row in rows]


async def add_note(
    connection: AsyncConnection, message_id: str, raw_state: str, description: str, dedup_key: str, now: int
) -> None:
    """A timeline entry that changes no status."""
    event = _event(
        message_id,
        occurred_at=now,
        recorded_at=now,
        source="gateway",
        status=None,
        raw_state=raw_state,
        description=description,
        error_code=None,
        dedup_key=dedup_key,
    )
    await _insert_events(connection, [event])


async def _adopt_for_unconfirmed(connection: AsyncConnection, report: ProviderReport, now: int) -> bool:
    """A receipt for no known submission may be that of a hand-over that got no answer: when its
    destination and text excerpt match exactly one such message, record it as that message's."""
    if not report.destination or not report.text_excerpt:
        return False
    candidates = (
        await connection.execute(
            select(unconfirmed_handovers.c.message_id).where(
                unconfirmed_handovers.c.provider == report.provider,
                unconfirmed_handovers.c.destination == report.destination,
                unconfirmed_handovers.c.text_excerpt == report.text_excerpt[:40],
            )
        )
    ).all()
    if len(candidates) != 1:
        return False
    assert report.provider_key is not None
    await _adopt(connection, candidates[0].message_id, report.provider, report.provider_key, now)
    return True


async def _adopt(
    connection: AsyncConnection, message_id: str, provider: str, provider_key: str, now: int
) -> None:
    await record_parts(connection, message_id, provider, [PartRecord(1, 1, provider_key, provider_key)], now)
    await connection.execute(
        delete(unconfirmed_handovers).where(unconfirmed_handovers.c.message_id == message_id)
    )
    event = _event(
        message_id,
        occurred_at=now,
        recorded_at=now,
        source=provider,
        status=None,
        raw_state="RECONCILED",
        description=f"A receipt from the carrier (id {provider_key}) matched this message's destination and "
        "text: the hand-over had reached the carrier",
        error_code=None,
        dedup_key=f"gateway:reconciled:{provider_key}",
    )
    await _insert_events(connection, [event])


async def remember_unconfirmed(
    connection: AsyncConnection, message_id: str, provider: str, destination: str, text_excerpt: str, now: int
) -> list[dict[str, Any]]:
    """Note a single-part hand-over that got no answer. If receipts already wait that match it
    (exactly one carrier id), adopt them: they are returned to be applied."""
    excerpt = text_excerpt[:40]
    keys = (
        await connection.execute(
            select(pending_reports.c.provider_key)
            .where(
                pending_reports.c.provider == provider,
                pending_reports.c.destination == destination,
                pending_reports.c.text_excerpt == excerpt,
            )
            .distinct()
        )
    ).all()
    await connection.execute(
        _insert_new(connection.dialect.name, unconfirmed_handovers),
        [
            {
                "message_id": message_id,
                "provider": provider,
                "destination": destination,
                "text_excerpt": excerpt,
                "created_at": now,
            }
        ],
    )
    if len(keys) != 1:
        return []
    await _adopt(connection, message_id, provider, keys[0].provider_key, now)
    return await take_pending(connection, provider, [keys[0].provider_key])


async def lapsed_without_receipt(connection: AsyncConnection, cutoff: int, limit: int) -> list[str]:
    """Messages still SENT or RECEIVED whose validity ended before `cutoff`."""
    rows = await connection.execute(
        select(messages.c.id)
        .where(
            messages.c.status_rank.in_([int(Rank.SENT), int(Rank.RECEIVED)]), messages.c.expires_at < cutoff
        )
        .limit(limit)
    )
    return [row.id for row in rows]


@functools.cache
def _insert_new(dialect: str, table: Table) -> Insert:
    """INSERT that skips rows violating a unique constraint, built once; run with a list of rows."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing()


@functools.cache
def _new_parts(dialect: str) -> Rows:
    return Rows(_insert_new(dialect, message_parts), (
        "message_id", "part_no", "parts_total", "provider", "provider_message_id", "provider_key",
        "status", "status_rank", "description", "submitted_at", "updated_at",
    ))  # fmt: skip


_EVENT_COLUMNS = (
    "message_id", "occurred_at", "recorded_at", "source", "status", "raw_state", "description",
    "error_code", "dedup_key",
)  # fmt: skip
Event = tuple[str, int, int, str, str | None, str, str, str | None, str]
"""A timeline entry, as a row of message_events in _EVENT_COLUMNS order."""


@functools.cache
def _new_events(dialect: str) -> InsertReturning:
    statement = _insert_new(dialect, message_events).returning(
        message_events.c.message_id, message_events.c.dedup_key
    )
    return InsertReturning(statement, _EVENT_COLUMNS)


def _event(
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
    """A timeline entry, as a row of message_events."""
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


async def _insert_events(connection: AsyncConnection, events: Sequence[Event]) -> list[bool]:
    """Store timeline entries in one statement; for each, whether it is new. An entry stored before
    (the same report twice: same message and dedup key) is skipped, and so is a repeat within
    `events`: only the first counts, as if they were stored one by one."""
    if not events:
        return []
    returned = await _new_events(connection.dialect.name).returning(connection, events)
    stored = {(message_id, dedup_key) for message_id, dedup_key in returned}
    new = []
    for event in events:
        key = (event[0], event[-1])
        new.append(key in stored)
        stored.discard(key)
    return new


@dataclass(slots=True)
class _Part:
    message_id: str
    part_no: int
    parts_total: int
    provider: str
    provider_key: str
    status: DeliveryStatus
    rank: Rank
    description: str
    error_code: str | None
    read_at: int | None
    status_changed: bool = False
    read_changed: bool = False


_PART_COLUMNS = (
    message_parts.c.message_id,
    message_parts.c.part_no,
    message_parts.c.parts_total,
    message_parts.c.provider,
    message_parts.c.provider_key,
    message_parts.c.status,
    message_parts.c.status_rank,
    message_parts.c.description,
    message_parts.c.error_code,
    message_parts.c.read_at,
)
# Parts with their message's status: a batch of receipts reads both with one statement.
#
# A batch reads the rows it may change, decides in memory and writes them back. Under
# PostgreSQL's READ COMMITTED, two processes doing that to one message at once (two webhooks of
# one message in two API processes, the expiry sweep beside a receipt) would each decide on what
# it read, and the later commit would overwrite the earlier: a DELIVERED message shown as
# RECEIVED or EXPIRED. So these reads lock their rows (FOR NO KEY UPDATE: no key changes, and no
# conflict with the locks foreign keys take), in key order as the writes do; a second batch
# waits, then reads what the first committed. SQLite renders no lock clause: its single
# writer's transactions already run one at a time (BEGIN IMMEDIATE).
# tests/store/test_concurrent_reports.py forces both interleavings.
_PARTS_WITH_STATUSES = (
    select(
        *_PART_COLUMNS,
        messages.c.status.label("message_status"),
        messages.c.status_rank.label("message_rank"),
        messages.c.read_at.label("message_read_at"),
        messages.c.fallback_for,
    )
    # Inner: PostgreSQL locks no row on the nullable side of an outer join, and every part's
    # message exists (they are stored together; messages are never deleted).
    .select_from(message_parts.join(messages, messages.c.id == message_parts.c.message_id))
    .order_by(message_parts.c.message_id, message_parts.c.part_no)
    .with_for_update(of=(message_parts, messages), key_share=True)
)
_SELECT_PARTS = _PARTS_WITH_STATUSES.where(message_parts.c.message_id.in_(_IDS))
_SELECT_FIRST_PARTS = _SELECT_PARTS.where(message_parts.c.part_no == 1)
_SELECT_PARTS_BY_KEY = _PARTS_WITH_STATUSES.where(
    message_parts.c.provider == bindparam("provider"), message_parts.c.provider_key.in_(_KEYS)
)
_UPDATE_PART_STATUS = Rows(
    update(message_parts)
    .where(message_parts.c.message_id == bindparam("m_id"), message_parts.c.part_no == bindparam("m_part"))
    .values(
        status=bindparam("m_status"),
        status_rank=bindparam("m_rank"),
        description=bindparam("m_description"),
        error_code=bindparam("m_error"),
        updated_at=bindparam("m_now"),
        read_at=func.coalesce(message_parts.c.read_at, bindparam("m_read_at", type_=BigInteger)),
    ),
    ("m_status", "m_rank", "m_error", "m_description", "m_now", "m_read_at", "m_id", "m_part"),
)
_UPDATE_PART_READ = Rows(
    update(message_parts)
    .where(message_parts.c.message_id == bindparam("m_id"), message_parts.c.part_no == bindparam("m_part"))
    .values(read_at=func.coalesce(message_parts.c.read_at, bindparam("m_read_at", type_=BigInteger))),
    ("m_read_at", "m_id", "m_part"),
)


class _Parts:
    """The message parts a batch of provider reports is about: read once, changed in memory, and
    written back once. Their messages' statuses are read with them, into `statuses`."""

    def __init__(self, connection: AsyncConnection, statuses: _Statuses) -> None:
        self._connection = connection
        self._statuses = statuses
        self._by_message: dict[str, dict[int, _Part]] = {}
        self._by_key: dict[tuple[str, str], _Part] = {}

    def of(self, report: ProviderReport) -> _Part | None:
        if report.provider_key is not None:
            return self._by_key.get((report.provider, report.provider_key))
        if report.message_id is not None:
            return self._by_message.get(report.message_id, {}).get(1)
        return None

    async def find(self, reports: Sequence[ProviderReport]) -> None:
        """Read the parts these reports name: by the provider's id, or (without one) part 1 of the
        message they name."""
        keys: dict[str, set[str]] = {}
        message_ids: set[str] = set()
        for report in reports:
            if report.provider_key is not None:
                keys.setdefault(report.provider, set()).add(report.provider_key)
            elif report.message_id is not None:
                message_ids.add(report.message_id)
        for provider, provider_keys in keys.items():
            await self._load(_SELECT_PARTS_BY_KEY, {"provider": provider, "keys": list(provider_keys)})
        if message_ids:
            await self._load(_SELECT_FIRST_PARTS, {"ids": list(message_ids)})

    async def load_messages(self, message_ids: Collection[str]) -> None:
        """Read every part of these messages (a multipart message's status is all of theirs)."""
        if message_ids:
            await self._load(_SELECT_PARTS, {"ids": list(message_ids)})

    async def _load(self, statement: Select[Any], parameters: dict[str, Any]) -> None:
        for (
            message_id,
            part_no,
            parts_total,
            provider,
            provider_key,
            status,
            rank,
            description,
            error_code,
            read_at,
            message_status,
            message_rank,
            message_read_at,
            fallback_for,
        ) in await self._connection.execute(statement, parameters):  # _PARTS_WITH_STATUSES's columns
            self._statuses.add(message_id, message_status, message_rank, message_read_at, fallback_for)
            parts = self._by_message.setdefault(message_id, {})
            if part_no in parts:
                continue  # read before, perhaps changed since
            part = _Part(
                message_id,
                part_no,
                parts_total,
                provider,
                provider_key,
                _STATUSES[status],
                _RANKS[rank],
                description,
                error_code,
                read_at,
            )
            parts[part_no] = part
            self._by_key[(provider, provider_key)] = part

    def states(self, message_id: str, total: int) -> list[PartState]:
        """The states of a message's parts; parts not accepted yet count as queued, so the message
        cannot look delivered."""
        parts = self._by_message.get(message_id, {})
        return [
            PartState(n, part.status, part.rank, part.description, part.error_code)
            if (part := parts.get(n)) is not None
            else PartState(n, DeliveryStatus.UNKNOWN, Rank.QUEUED, "Queued", None)
            for n in sorted({*parts, *range(1, total + 1)})
        ]

    async def write(self, now: int) -> None:
        # In key order: two workers' batches touching the same rows lock them in the same order.
        changed = sorted(
            (part for parts in self._by_message.values() for part in parts.values()),
            key=lambda part: (part.message_id, part.part_no),
        )
        statuses = [
            (
                part.status.value,
                int(part.rank),
                part.error_code,
                part.description[:300],
                now,
                part.read_at if part.read_changed else None,
                part.message_id,
                part.part_no,
            )
            for part in changed
            if part.status_changed
        ]
        reads = [
            (part.read_at, part.message_id, part.part_no)
            for part in changed
            if part.read_changed and not part.status_changed
        ]
        await _UPDATE_PART_STATUS.execute(self._connection, statuses)
        await _UPDATE_PART_READ.execute(self._connection, reads)


@dataclass(slots=True)
class _Status:
    status: DeliveryStatus
    rank: Rank
    read_at: int | None
    fallback_for: str | None
    description: str = ""
    error_code: str | None = None
    status_changed: bool = False
    read_changed: bool = False


_SELECT_STATUSES = (
    select(
        messages.c.id, messages.c.status, messages.c.status_rank, messages.c.read_at, messages.c.fallback_for
    )
    .where(messages.c.id.in_(_IDS))
    .order_by(messages.c.id)
    .with_for_update(key_share=True)  # see _PARTS_WITH_STATUSES
)
_UPDATE_MESSAGE_STATUS = Rows(
    update(messages)
    .where(messages.c.id == bindparam("m_id"))
    .values(
        status=bindparam("m_status"),
        status_rank=bindparam("m_rank"),
        status_description=bindparam("m_description"),
        error_code=bindparam("m_error"),
        updated_at=bindparam("m_now"),
        read_at=func.coalesce(messages.c.read_at, bindparam("m_read_at", type_=BigInteger)),
    ),
    ("m_status", "m_rank", "m_description", "m_error", "m_now", "m_read_at", "m_id"),
)
_UPDATE_MESSAGE_READ = Rows(
    update(messages)
    .where(messages.c.id == bindparam("m_id"))
    .values(read_at=func.coalesce(messages.c.read_at, bindparam("m_read_at", type_=BigInteger))),
    ("m_read_at", "m_id"),
)


class _Statuses:
    """The statuses of the messages a batch of reports is about: read once, changed in memory
    report by report (so reports for one message apply in order, as they would one by one), and
    written back once."""

    def __init__(self, connection: AsyncConnection, now: int) -> None:
        self._connection = connection
        self._now = now
        self._rows: dict[str, _Status | None] = {}

    async def load(self, message_ids: Iterable[str]) -> None:
        wanted = {message_id for message_id in message_ids if message_id not in self._rows}
        if not wanted:
            return
        rows = await self._connection.execute(_SELECT_STATUSES, {"ids": list(wanted)})
        for message_id, status, rank, read_at, fallback_for in rows:
            self.add(message_id, status, rank, read_at, fallback_for)
        for message_id in wanted:
            self.add(message_id, None, None, None, None)  # not found: no such message

    def add(
        self,
        message_id: str,
        status: str | None,
        rank: int | None,
        read_at: int | None,
        fallback_for: str | None,
    ) -> None:
        """A message's status as read (None: no such message), unless read before."""
        if message_id in self._rows:
            return
        if status is None or rank is None:
            self._rows[message_id] = None
        else:
            self._rows[message_id] = _Status(_STATUSES[status], _RANKS[rank], read_at, fallback_for)

    async def apply(self, message_id: str, report: Report, *, read_at: int | None) -> bool:
        """Apply a report to the message (in memory); True when it changed its status."""
        await self.load([message_id])  # read already, but for the original of a fallback SMS
        row = self._rows[message_id]
        if row is None:
            return False
        transition = decide(CurrentState(row.status, row.rank), report)
        if transition.changes_status:
            row.status, row.rank = report.status, transition.new_rank
            row.description = report.description[:300]
            failed = report.status in (DeliveryStatus.ERROR, DeliveryStatus.EXPIRED)
            row.error_code = report.error_code if failed else None
            row.status_changed = True
        if read_at is not None and row.read_at is None:
            row.read_at = read_at
            row.read_changed = True
        if row.fallback_for and (transition.changes_status or read_at is not None):
            # The RCS message this SMS stands in for shows how its delivery went.
            mirrored = Report(
                report.status,
                f"Sent as SMS {message_id}: {report.description}",
                report.error_code,
                is_read=report.is_read,
                queued=report.queued,
            )
            await self.apply(row.fallback_for, mirrored, read_at=read_at)
        return transition.changes_status

    async def write(self) -> None:
        # In key order: two workers' batches touching the same rows lock them in the same order.
        changed = [(message_id, row) for message_id, row in sorted(self._rows.items()) if row is not None]
        statuses = [
            (
                row.status.value,
                int(row.rank),
                row.description,
                row.error_code,
                self._now,
                row.read_at if row.read_changed else None,
                message_id,
            )
            for message_id, row in changed
            if row.status_changed
        ]
        reads = [
            (row.read_at, message_id)
            for message_id, row in changed
            if row.read_changed and not row.status_changed
        ]
        await _UPDATE_MESSAGE_STATUS.execute(self._connection, statuses)
        await _UPDATE_MESSAGE_READ.execute(self._connection, reads)
