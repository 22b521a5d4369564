"""Provider reports that arrived before their submission was recorded: parked, then handed back.

A receipt can arrive before the answer to its submission is recorded (the answer waits for its
group commit, or another worker is still committing it). Such a report names a provider id no
part has yet: it is kept in pending_reports, as versioned JSON, and handed back to be applied
once the part is recorded (docs/delivery.md).

A parked report that nothing claims names an id we never issued, or one in a notation our
settings do not expect: the housekeeping (dispatch/housekeeping.py) reports those
(`notice_unmatched`, `parts_by_key`) and drops them after a while (`expire_parked`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from partner_gateway.domain.reports import StatusReport, from_payload, to_payload
from partner_gateway.store.dialects import insert_skipping_duplicates
from partner_gateway.store.tables import message_parts, pending_reports

_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)


async def park(connection: AsyncConnection, reports: Sequence[StatusReport], now: int) -> None:
    """Keep reports no part has the provider's id for yet (each has a `provider_key`); a report
    parked before (the same provider, id and dedup key) is kept once."""
    if not reports:
        return
    rows = [
        {
            "provider": report.provider,
            "provider_key": report.provider_key,
            "dedup_key": report.dedup_key,
            "report": json.dumps(to_payload(report)),
            "received_at": now,
            "destination": report.destination,
            "text_excerpt": report.text_excerpt,
        }
        for report in reports
    ]
    await connection.execute(insert_skipping_duplicates(connection.dialect.name, pending_reports), rows)


_SELECT_PENDING = select(pending_reports.c.id, pending_reports.c.report).where(
    pending_reports.c.provider == bindparam("provider"), pending_reports.c.provider_key.in_(_KEYS)
)


async def take_pending(
    connection: AsyncConnection, provider: str, provider_keys: Sequence[str]
) -> list[StatusReport]:
    """Reports that waited for these parts; removed as they are handed back for applying."""
    rows = (
        await connection.execute(_SELECT_PENDING, {"provider": provider, "keys": list(provider_keys)})
    ).all()
    return await _taken(connection, rows)


async def take_pending_with_parts(connection: AsyncConnection, limit: int) -> list[StatusReport]:
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
    return await _taken(connection, rows)


async def _taken(connection: AsyncConnection, rows: Sequence[Any]) -> list[StatusReport]:
    """Parked reports (id, report) removed, and the reports they kept."""
    if rows:
        await connection.execute(
            delete(pending_reports).where(pending_reports.c.id.in_([row.id for row in rows]))
        )
    return [from_payload(json.loads(row.report)) for row in rows]


@dataclass(frozen=True, slots=True)
class ParkedReport:
    """A parked report as the housekeeping sees it: where it came from and the id it names."""

    id: int
    provider: str
    provider_key: str
    received_at: int


_PARKED_COLUMNS = (
    pending_reports.c.id,
    pending_reports.c.provider,
    pending_reports.c.provider_key,
    pending_reports.c.received_at,
)


async def notice_unmatched(
    connection: AsyncConnection, received_before: int, limit: int, now: int
) -> list[ParkedReport]:
    """Reports parked before `received_before` (so past any race with their submission's record)
    that no watch has told of yet, oldest first, marked told now: each is told once, whichever
    of several processes looks (two at once take different rows)."""
    rows = (
        await connection.execute(
            select(*_PARKED_COLUMNS)
            .where(pending_reports.c.noticed_at.is_(None), pending_reports.c.received_at < received_before)
            .order_by(pending_reports.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if rows:
        await connection.execute(
            update(pending_reports)
            .where(pending_reports.c.id.in_([row.id for row in rows]))
            .values(noticed_at=now)
        )
    return [ParkedReport(row.id, row.provider, row.provider_key, row.received_at) for row in rows]


async def expire_parked(connection: AsyncConnection, received_before: int, limit: int) -> list[ParkedReport]:
    """Parked reports received before `received_before`, removed unapplied (at most `limit`,
    oldest first): no submission of ours ever had their ids."""
    rows = (
        await connection.execute(
            select(*_PARKED_COLUMNS)
            .where(pending_reports.c.received_at < received_before)
            .order_by(pending_reports.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # two workers expiring at once take different rows
        )
    ).all()
    if rows:
        await connection.execute(
            delete(pending_reports).where(pending_reports.c.id.in_([row.id for row in rows]))
        )
    return [ParkedReport(row.id, row.provider, row.provider_key, row.received_at) for row in rows]


async def parts_by_key(connection: AsyncConnection, provider: str, keys: Sequence[str]) -> dict[str, str]:
    """{provider_key: message_id} of the provider's parts with one of these keys."""
    if not keys:
        return {}
    rows = (
        await connection.execute(
            select(message_parts.c.provider_key, message_parts.c.message_id).where(
                message_parts.c.provider == provider, message_parts.c.provider_key.in_(list(keys))
            )
        )
    ).all()
    return {row.provider_key: row.message_id for row in rows}
