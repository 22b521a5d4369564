"""The message parts one batch of provider reports is about: read once, changed in memory,
written once (with status_batch.py's `Statuses`, which holds their messages).

A provider reports on parts (a multipart SMS is several submit_sm, each with its own receipt);
a message's status is all of its parts' (domain/multipart.py). The parts are read with their
messages' statuses in one statement, locked on PostgreSQL (see `PARTS_WITH_STATUSES`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from partner_gateway.domain.lifecycle import CurrentState, ReportedStatus, Transition, decide
from partner_gateway.domain.multipart import PartState, not_accepted_yet
from partner_gateway.domain.reports import StatusReport
from partner_gateway.domain.statuses import DeliveryStatus, Rank
from partner_gateway.store.repositories.delivery.callback_events import HAS_TARGET
from partner_gateway.store.repositories.delivery.status_batch import (
    IDS,
    RANK_BY_VALUE,
    STATUS_BY_VALUE,
    Statuses,
    read_update,
    status_update,
)
from partner_gateway.store.tables import callback_settings, message_parts, messages

_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)


@dataclass(slots=True)
class PartRow:
    """A message_parts row as the batch holds it, and what the batch changed in it."""

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

    def apply(self, report: ReportedStatus, *, read_at: int) -> Transition:
        """Apply a report to the part (in memory) with the lifecycle rule; a read report sets the
        part's read time to `read_at` unless it has one."""
        transition = decide(CurrentState(self.status, self.rank), report)
        if transition.changes_status:
            self.status, self.rank = report.status, transition.new_rank
            self.description, self.error_code = report.description, report.error_code
            self.status_changed = True
        if transition.sets_read and self.read_at is None:
            self.read_at = read_at
            self.read_changed = True
        return transition


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
PARTS_WITH_STATUSES = (
    select(
        *_PART_COLUMNS,
        messages.c.status.label("message_status"),
        messages.c.status_rank.label("message_rank"),
        messages.c.read_at.label("message_read_at"),
        messages.c.fallback_for,
        messages.c.channel.label("message_channel"),
        messages.c.created_at.label("message_created_at"),
        messages.c.status_changes,
        HAS_TARGET,
        messages.c.company_id,
        messages.c.error_code.label("message_error_code"),
    )
    # Inner: PostgreSQL locks no row on the nullable side of an outer join, and every part's
    # message exists (they are stored together; messages are never deleted). The callback
    # settings are joined outer and not locked: they only say whether there is a default URL.
    .select_from(
        message_parts.join(messages, messages.c.id == message_parts.c.message_id).outerjoin(
            callback_settings, callback_settings.c.company_id == messages.c.company_id
        )
    )
    .order_by(message_parts.c.message_id, message_parts.c.part_no)
    .with_for_update(of=(message_parts, messages), key_share=True)
)
_SELECT_PARTS = PARTS_WITH_STATUSES.where(message_parts.c.message_id.in_(IDS))
_SELECT_FIRST_PARTS = _SELECT_PARTS.where(message_parts.c.part_no == 1)
_SELECT_PARTS_BY_KEY = PARTS_WITH_STATUSES.where(
    message_parts.c.provider == bindparam("provider"), message_parts.c.provider_key.in_(_KEYS)
)
_PART_KEY = (message_parts.c.message_id == bindparam("m_id")) & (
    message_parts.c.part_no == bindparam("m_part")
)
_UPDATE_PART_STATUS = status_update(
    message_parts,
    _PART_KEY,
    message_parts.c.description,
    ("m_status", "m_rank", "m_error", "m_description", "m_now", "m_read_at", "m_id", "m_part"),
)
_UPDATE_PART_READ = read_update(message_parts, _PART_KEY, ("m_read_at", "m_id", "m_part"))


class Parts:
    """The message parts a batch of provider reports is about: read once, changed in memory, and
    written back once. Their messages' statuses are read with them, into `statuses`."""

    def __init__(self, connection: AsyncConnection, statuses: Statuses) -> None:
        self._connection = connection
        self._statuses = statuses
        self._by_message: dict[str, dict[int, PartRow]] = {}
        self._by_key: dict[tuple[str, str], PartRow] = {}

    def of(self, report: StatusReport) -> PartRow | None:
        """The part a report names, if read: by the provider's id, or else part 1 of its message."""
        if report.provider_key is not None:
            return self._by_key.get((report.provider, report.provider_key))
        if report.message_id is not None:
            return self._by_message.get(report.message_id, {}).get(1)
        return None

    async def find(self, reports: Sequence[StatusReport]) -> None:
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
            message_channel,
            message_created_at,
            status_changes,
            targeted,
            company_id,
            message_error_code,
        ) in await self._connection.execute(statement, parameters):  # PARTS_WITH_STATUSES's columns
            self._statuses.add(
                message_id,
                message_status,
                message_rank,
                message_read_at,
                fallback_for,
                message_channel,
                message_created_at,
                status_changes,
                targeted,
                company_id,
                message_error_code,
            )
            parts = self._by_message.setdefault(message_id, {})
            if part_no in parts:
                continue  # read before, perhaps changed since
            part = PartRow(
                message_id,
                part_no,
                parts_total,
                provider,
                provider_key,
                STATUS_BY_VALUE[status],
                RANK_BY_VALUE[rank],
                description,
                error_code,
                read_at,
            )
            parts[part_no] = part
            self._by_key[(provider, provider_key)] = part

    def states(self, message_id: str, total: int) -> list[PartState]:
        """The states of a message's parts, those not accepted yet included."""
        parts = self._by_message.get(message_id, {})
        return [
            PartState(n, part.status, part.rank, part.description, part.error_code)
            if (part := parts.get(n)) is not None
            else not_accepted_yet(n)
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
