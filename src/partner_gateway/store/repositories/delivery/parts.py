"""A message's parts as a provider accepted them: recorded SENT, with the ids receipts name.

A message is handed over in one part or several (SMPP concatenation); each accepted part is a
row of message_parts with the provider's id for it, which is how its receipts find it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.statuses import DeliveryStatus, Rank
from partner_gateway.store.bulk import Rows
from partner_gateway.store.dialects import insert_skipping_duplicates
from partner_gateway.store.tables import message_parts

ACCEPTED_PART_DESCRIPTION = "Accepted by the provider"


@dataclass(frozen=True, slots=True)
class PartRecord:
    part_no: int
    parts_total: int
    provider_message_id: str
    provider_key: str


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
            ACCEPTED_PART_DESCRIPTION,
            now,
            now,
        )
        for submission in submissions
        for part in submission.parts
    ]
    await _new_parts(connection.dialect.name).execute(connection, rows)


@functools.cache
def _new_parts(dialect: str) -> Rows:
    return Rows(insert_skipping_duplicates(dialect, message_parts), (
        "message_id", "part_no", "parts_total", "provider", "provider_message_id", "provider_key",
        "status", "status_rank", "description", "submitted_at", "updated_at",
    ))  # fmt: skip


async def parts_provider(connection: AsyncConnection, message_id: str) -> str | None:
    """The provider that accepted the message's first parts (a multipart SMS resumed after a
    failure continues on the same carrier); None when none was accepted. A primary-key range."""
    c = message_parts.c
    query = select(c.provider).where(c.message_id == message_id).order_by(c.part_no).limit(1)
    return (await connection.execute(query)).scalar_one_or_none()
