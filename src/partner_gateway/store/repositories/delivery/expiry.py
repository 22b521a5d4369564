"""The expiry sweep's query: messages whose validity ended while they waited for a receipt."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.statuses import Channel, Rank
from partner_gateway.store.tables import messages

_WAITING_FOR_A_RECEIPT = [int(Rank.SENT), int(Rank.RECEIVED)]


async def lapsed_without_receipt(
    connection: AsyncConnection, cutoff: int, limit: int
) -> list[tuple[str, Channel]]:
    """Messages (id, channel) still SENT or RECEIVED whose validity ended before `cutoff`
    (ix_messages_open)."""
    rows = await connection.execute(
        select(messages.c.id, messages.c.channel)
        .where(messages.c.status_rank.in_(_WAITING_FOR_A_RECEIPT), messages.c.expires_at < cutoff)
        .limit(limit)
    )
    return [(row.id, Channel(row.channel)) for row in rows]
