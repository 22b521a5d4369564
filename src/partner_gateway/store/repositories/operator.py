"""What an operator asks of the store across companies: the companies, their traffic, any message.

A partner's key only ever reaches its own company's messages (api/); these answer the CLI, for
the people who run the gateway: every company with its keys, a company's messages counted by
channel and status over a time window, and one message by id whoever sent it, with its timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.messages import MessageEvent, MessageStatus
from partner_gateway.store.repositories.messages import STATUS_COLUMNS, build_statuses, timeline
from partner_gateway.store.tables import api_keys, companies, messages


@dataclass(frozen=True, slots=True)
class CompanySummary:
    id: str
    name: str
    created_at: int
    active_keys: int
    revoked_keys: int


@dataclass(frozen=True, slots=True)
class Traffic:
    """How many of a company's messages created in a window are on each channel in each status."""

    counts: dict[str, dict[str, int]]  # channel -> status -> messages

    @property
    def total(self) -> int:
        return sum(sum(by_status.values()) for by_status in self.counts.values())


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message as an operator sees it: whose it is, its status, its timeline."""

    company_id: str
    status: MessageStatus
    events: list[MessageEvent]


_KEY_COUNTS = (
    select(
        api_keys.c.company_id,
        func.count().filter(api_keys.c.revoked_at.is_(None)).label("active"),
        func.count().filter(api_keys.c.revoked_at.is_not(None)).label("revoked"),
    )
    .group_by(api_keys.c.company_id)
    .subquery()
)
_COMPANIES = (
    select(
        companies.c.id,
        companies.c.name,
        companies.c.created_at,
        func.coalesce(_KEY_COUNTS.c.active, 0),
        func.coalesce(_KEY_COUNTS.c.revoked, 0),
    )
    .select_from(companies.outerjoin(_KEY_COUNTS, _KEY_COUNTS.c.company_id == companies.c.id))
    .order_by(companies.c.created_at, companies.c.id)
)
# One range scan of the (company_id, channel, status, created_at, id) index per (channel, status).
_TRAFFIC = (
    select(messages.c.channel, messages.c.status, func.count())
    .where(
        messages.c.company_id == bindparam("company_id"),
        messages.c.created_at >= bindparam("start"),
        messages.c.created_at < bindparam("end"),
    )
    .group_by(messages.c.channel, messages.c.status)
)
_MESSAGE = select(messages.c.company_id, *STATUS_COLUMNS).where(messages.c.id == bindparam("id"))


class OperatorQueries:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def companies(self, company_id: str | None = None) -> list[CompanySummary]:
        """Every company (or the one named), oldest first, with how many keys it holds."""
        statement = _COMPANIES if company_id is None else _COMPANIES.where(companies.c.id == company_id)
        rows = await self._connection.execute(statement)
        return [CompanySummary(*row) for row in rows]

    async def traffic(self, company_id: str, start: int, end: int) -> Traffic:
        """The company's messages created in [start, end), counted by channel and status."""
        rows = await self._connection.execute(
            _TRAFFIC, {"company_id": company_id, "start": start, "end": end}
        )
        counts: dict[str, dict[str, int]] = {}
        for channel, status, count in rows:
            counts.setdefault(channel, {})[status] = int(count)
        return Traffic(counts)

    async def message(self, message_id: str) -> MessageRecord | None:
        """A message by id, whichever company sent it, with its timeline; None when there is none."""
        row = (await self._connection.execute(_MESSAGE, {"id": message_id})).first()
        if row is None:
            return None
        [status] = build_statuses([row[1:]], MessageStatus)
        return MessageRecord(row[0], status, await timeline(self._connection, message_id, status.created_at))
