"""Unanswered hand-overs: a message written to a carrier that never answered, and its receipt.

Such a message may have reached the carrier. It is remembered (unconfirmed_handovers) with its
destination and the beginning of its text; a receipt for no known submission that matches
exactly one such message is recorded as that message's (domain/reconciliation.py), whichever of
the two is stored first.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.reconciliation import sole_match
from partner_gateway.domain.reports import StatusReport
from partner_gateway.store.dialects import insert_skipping_duplicates
from partner_gateway.store.repositories.delivery.events import add_note
from partner_gateway.store.repositories.delivery.parked import take_pending
from partner_gateway.store.repositories.delivery.parts import PartRecord, record_parts
from partner_gateway.store.tables import pending_reports, unconfirmed_handovers

_EXCERPT_CHARACTERS = 40  # the text_excerpt columns' width: both sides are compared cut to it


async def remember_unconfirmed(
    connection: AsyncConnection, message_id: str, provider: str, destination: str, text_excerpt: str, now: int
) -> list[StatusReport]:
    """Note a single-part hand-over that got no answer. If receipts already wait that match it
    (exactly one carrier id), adopt them: they are returned to be applied."""
    excerpt = text_excerpt[:_EXCERPT_CHARACTERS]
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
        insert_skipping_duplicates(connection.dialect.name, unconfirmed_handovers),
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
    provider_key = sole_match([row.provider_key for row in keys])
    if provider_key is None:
        return []
    await _adopt(connection, message_id, provider, provider_key, now)
    return await take_pending(connection, provider, [provider_key])


async def adopt_for_receipt(connection: AsyncConnection, report: StatusReport, now: int) -> bool:
    """A receipt for no known submission may be that of a hand-over that got no answer: when its
    destination and text excerpt match exactly one such message, record it as that message's.
    True when it did (the receipt's part exists now)."""
    if report.provider_key is None or not report.destination or not report.text_excerpt:
        return False  # nothing to match it on
    candidates = (
        await connection.execute(
            select(unconfirmed_handovers.c.message_id).where(
                unconfirmed_handovers.c.provider == report.provider,
                unconfirmed_handovers.c.destination == report.destination,
                unconfirmed_handovers.c.text_excerpt == report.text_excerpt[:_EXCERPT_CHARACTERS],
            )
        )
    ).all()
    message_id = sole_match([row.message_id for row in candidates])
    if message_id is None:
        return False
    await _adopt(connection, message_id, report.provider, report.provider_key, now)
    return True


async def _adopt(
    connection: AsyncConnection, message_id: str, provider: str, provider_key: str, now: int
) -> None:
    """Record the carrier's id as the message's one part; it is no longer unconfirmed."""
    await record_parts(connection, message_id, provider, [PartRecord(1, 1, provider_key, provider_key)], now)
    await connection.execute(
        delete(unconfirmed_handovers).where(unconfirmed_handovers.c.message_id == message_id)
    )
    await add_note(
        connection,
        message_id,
        "RECONCILED",
        f"A receipt from the carrier (id {provider_key}) matched this message's destination and "
        "text: the hand-over had reached the carrier",
        f"gateway:reconciled:{provider_key}",
        now,
        source=provider,
    )
