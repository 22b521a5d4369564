"""The delivery pipeline's queries: the outbox, message parts, reports and status changes.

Every function runs inside the caller's write transaction (see store/batching.py), so a
status change, its timeline entry and the outbox change commit together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.lifecycle import CurrentState, PartState, Report, aggregate, decide
from partner_gateway.domain.statuses import Channel, DeliveryStatus, Rank
from partner_gateway.store.dialects import insert_ignoring_duplicates
from partner_gateway.store.tables import (
    message_events,
    message_parts,
    messages,
    outbox,
    pending_reports,
    unconfirmed_handovers,
)


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


async def _with_messages(connection: AsyncConnection, claimed: Sequence[Any]) -> list[ClaimedItem]:
    """Claimed outbox rows (id, message_id, attempts, parts_done) joined with their messages."""
    by_message = {row.message_id: row for row in claimed}
    rows = await connection.execute(select(messages).where(messages.c.id.in_(list(by_message))))
    items = [
        ClaimedItem(
            outbox_id=by_message[row.id].id,
            attempts=by_message[row.id].attempts,
            parts_done=by_message[row.id].parts_done,
            message_id=row.id,
            company_id=row.company_id,
            channel=Channel(row.channel),
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


async def claim_published(
    connection: AsyncConnection, outbox_id: int, now: int, lease_ms: int
) -> ClaimedItem | None:
    """A worker takes one published item it received from the queue; None when another worker
    has it already or it is done (a redelivered or duplicate queue message)."""
    claimed = (
        await connection.execute(
            update(outbox)
            .where(outbox.c.id == outbox_id, outbox.c.state == "published")
            .values(state="claimed", lease_until=now + lease_ms, attempts=outbox.c.attempts + 1)
            .returning(outbox.c.id, outbox.c.message_id, outbox.c.attempts, outbox.c.parts_done)
        )
    ).first()
    if claimed is None:
        return None
    items = await _with_messages(connection, [claimed])
    return items[0] if items else None


async def renew_leases(connection: AsyncConnection, outbox_ids: Sequence[int], until: int) -> None:
    await connection.execute(
        update(outbox)
        .where(outbox.c.id.in_(list(outbox_ids)), outbox.c.state.in_(["claimed", "written"]))
        .values(lease_until=until)
    )


async def mark_written(connection: AsyncConnection, outbox_ids: Sequence[int]) -> None:
    await connection.execute(update(outbox).where(outbox.c.id.in_(list(outbox_ids))).values(state="written"))


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


async def finish(connection: AsyncConnection, outbox_id: int) -> None:
    await connection.execute(delete(outbox).where(outbox.c.id == outbox_id))


async def record_parts(
    connection: AsyncConnection, message_id: str, provider: str, parts: Sequence[PartRecord], now: int
) -> list[int]:
    """Record the provider's ids of accepted parts (status SENT); returns the part numbers
    recorded now (a part recorded before is left as it is)."""
    if not parts:
        return []
    dialect = connection.dialect.name
    await connection.execute(
        insert_ignoring_duplicates(
            dialect,
            message_parts,
            [
                {
                    "message_id": message_id,
                    "part_no": part.part_no,
                    "parts_total": part.parts_total,
                    "provider": provider,
                    "provider_message_id": part.provider_message_id,
                    "provider_key": part.provider_key,
                    "status": DeliveryStatus.SENT.value,
                    "status_rank": int(Rank.SENT),
                    "description": "Accepted by the provider",
                    "submitted_at": now,
                    "updated_at": now,
                }
                for part in parts
            ],
        )
    )
    return [part.part_no for part in parts]


async def apply_gateway_report(
    connection: AsyncConnection, message_id: str, report: GatewayReport, now: int, source: str = "gateway"
) -> bool:
    """Record a status the gateway decided; True when it changed the message."""
    inserted = await _insert_event(
        connection,
        message_id,
        occurred_at=now,
        recorded_at=now,
        source=source,
        status=report.status,
        raw_state=report.raw_state,
        description=report.description,
        error_code=report.error_code,
        dedup_key=report.dedup_key,
    )
    if not inserted:
        return False
    return await _apply_to_message(
        connection,
        message_id,
        Report(report.status, report.description, report.error_code, queued=report.queued),
        now,
        read_at=None,
    )


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
    payload: dict[str, Any]  # the whole report, kept if it has to wait for its submission
    destination: str | None = None  # where the provider says the message went (digits)
    text_excerpt: str | None = None  # how the provider says it began


async def apply_provider_report(connection: AsyncConnection, report: ProviderReport, now: int) -> str:
    """Apply one provider report. Returns 'applied', 'duplicate' or 'pending' (no part yet)."""
    part = await _find_part(connection, report)
    if (
        part is None
        and report.provider_key is not None
        and await _adopt_for_unconfirmed(connection, report, now)
    ):
        part = await _find_part(connection, report)
    if part is None:
        if report.provider_key is None:
            return "pending"
        await connection.execute(
            insert_ignoring_duplicates(
                connection.dialect.name,
                pending_reports,
                {
                    "provider": report.provider,
                    "provider_key": report.provider_key,
                    "dedup_key": report.dedup_key,
                    "report": json.dumps(report.payload),
                    "received_at": now,
                    "destination": report.destination,
                    "text_excerpt": report.text_excerpt,
                },
            )
        )
        return "pending"
    message_id, part_no = part.message_id, part.part_no
    inserted = await _insert_event(
        connection,
        message_id,
        occurred_at=report.occurred_at,
        recorded_at=now,
        source=report.provider,
        status=report.status,
        raw_state=report.raw_state,
        description=report.description if part.parts_total == 1 else f"{report.description} (part {part_no})",
        error_code=report.error_code,
        dedup_key=report.dedup_key,
    )
    if not inserted:
        return "duplicate"
    if report.status is None:
        return "applied"
    current = CurrentState(DeliveryStatus(part.status), Rank(part.status_rank))
    transition = decide(
        current, Report(report.status, report.description, report.error_code, is_read=report.is_read)
    )
    values: dict[str, Any] = {}
    if transition.changes_status:
        values.update(
            status=report.status.value,
            status_rank=int(transition.new_rank),
            description=report.description,
            error_code=report.error_code,
            updated_at=now,
        )
    if transition.sets_read and part.read_at is None:
        values["read_at"] = report.occurred_at
    if values:
        await connection.execute(
            update(message_parts)
            .where(message_parts.c.message_id == message_id, message_parts.c.part_no == part_no)
            .values(**values)
        )
    parts = (
        await connection.execute(
            select(
                message_parts.c.part_no,
                message_parts.c.status,
                message_parts.c.status_rank,
                message_parts.c.description,
                message_parts.c.error_code,
                message_parts.c.parts_total,
            ).where(message_parts.c.message_id == message_id)
        )
    ).all()
    states = [
        PartState(
            row.part_no, DeliveryStatus(row.status), Rank(row.status_rank), row.description, row.error_code
        )
        for row in parts
    ]
    total = parts[0].parts_total if parts else 1
    if len(states) < total:
        # Parts not accepted yet count as queued: the message cannot look delivered.
        states += [
            PartState(n, DeliveryStatus.UNKNOWN, Rank.QUEUED, "Queued", None)
            for n in range(1, total + 1)
            if n not in {state.part_no for state in states}
        ]
    overall = aggregate(states)
    read_at = report.occurred_at if transition.sets_read else None
    await _apply_to_message(
        connection,
        message_id,
        Report(overall.status, overall.description, overall.error_code, queued=overall.rank is Rank.QUEUED),
        now,
        read_at=read_at,
    )
    return "applied"


async def take_pending(
    connection: AsyncConnection, provider: str, provider_keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Reports that waited for these parts; removed as they are handed back for applying."""
    rows = (
        await connection.execute(
            select(pending_reports.c.id, pending_reports.c.report).where(
                pending_reports.c.provider == provider,
                pending_reports.c.provider_key.in_(list(provider_keys)),
            )
        )
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
    await _insert_event(
        connection,
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
    await _insert_event(
        connection,
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
        insert_ignoring_duplicates(
            connection.dialect.name,
            unconfirmed_handovers,
            {
                "message_id": message_id,
                "provider": provider,
                "destination": destination,
                "text_excerpt": excerpt,
                "created_at": now,
            },
        )
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


async def _find_part(connection: AsyncConnection, report: ProviderReport) -> Any:
    columns = (
        message_parts.c.message_id,
        message_parts.c.part_no,
        message_parts.c.parts_total,
        message_parts.c.status,
        message_parts.c.status_rank,
        message_parts.c.read_at,
    )
    if report.provider_key is not None:
        return (
            await connection.execute(
                select(*columns).where(
                    message_parts.c.provider == report.provider,
                    message_parts.c.provider_key == report.provider_key,
                )
            )
        ).first()
    if report.message_id is not None:
        return (
            await connection.execute(
                select(*columns).where(
                    and_(message_parts.c.message_id == report.message_id, message_parts.c.part_no == 1)
                )
            )
        ).first()
    return None


async def _insert_event(
    connection: AsyncConnection,
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
) -> bool:
    result = await connection.execute(
        insert_ignoring_duplicates(
            connection.dialect.name,
            message_events,
            {
                "message_id": message_id,
                "occurred_at": occurred_at,
                "recorded_at": recorded_at,
                "source": source,
                "status": status.value if status else None,
                "raw_state": raw_state[:100],
                "description": description[:300],
                "error_code": error_code,
                "dedup_key": dedup_key[:200],
            },
        )
    )
    return bool(result.rowcount)


async def _apply_to_message(
    connection: AsyncConnection, message_id: str, report: Report, now: int, *, read_at: int | None
) -> bool:
    row = (
        await connection.execute(
            select(
                messages.c.status, messages.c.status_rank, messages.c.read_at, messages.c.fallback_for
            ).where(messages.c.id == message_id)
        )
    ).first()
    if row is None:
        return False
    transition = decide(CurrentState(DeliveryStatus(row.status), Rank(row.status_rank)), report)
    values: dict[str, Any] = {}
    if transition.changes_status:
        values.update(
            status=report.status.value,
            status_rank=int(transition.new_rank),
            status_description=report.description[:300],
            error_code=report.error_code
            if report.status in (DeliveryStatus.ERROR, DeliveryStatus.EXPIRED)
            else None,
            updated_at=now,
        )
    if read_at is not None and row.read_at is None:
        values["read_at"] = read_at
    if values:
        await connection.execute(update(messages).where(messages.c.id == message_id).values(**values))
    if row.fallback_for and (transition.changes_status or read_at is not None):
        # The RCS message this SMS stands in for shows how its delivery went.
        mirrored = Report(
            report.status,
            f"Sent as SMS {message_id}: {report.description}",
            report.error_code,
            is_read=report.is_read,
            queued=report.queued,
        )
        await _apply_to_message(connection, row.fallback_for, mirrored, now, read_at=read_at)
    return transition.changes_status
