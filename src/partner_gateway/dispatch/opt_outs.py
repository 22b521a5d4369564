"""Whether a message's destination opted out: one primary-key read of `opt_outs` per hand-over,
on a reader, before any provider sees the message (a STOP committed before the hand-over starts
is always seen)."""

from __future__ import annotations

from partner_gateway.domain.statuses import Channel
from partner_gateway.store.database import Database
from partner_gateway.store.repositories import inbound


class OptOutCheck:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def __call__(self, company_id: str, channel: Channel, to: str) -> bool:
        async with self._database.read() as connection:
            return await inbound.is_opted_out(connection, company_id, channel, to)
