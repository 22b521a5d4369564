"""The status changes of one batch of reports: read once, changed in memory, written once.

A batch's reports may touch one message several times (its sent and delivered receipts, every
part of a multipart message, a fallback SMS and its RCS original). `Statuses` (here, the
messages) and `Parts` (part_batch.py, their parts) read the rows the batch is about in a few
statements, apply each report in memory in order, as the reports would apply one by one, and
write every changed row back in one statement per kind of change. The reads lock what they read
on PostgreSQL (see part_batch.py's `PARTS_WITH_STATUSES`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import BigInteger, Column, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from partner_gateway.domain.lifecycle import CurrentState, ReportedStatus, decide, kept_error_code
from partner_gateway.domain.sms_fallback import onto_original
from partner_gateway.domain.statuses import FINAL_STATUSES, DeliveryStatus, Rank
from partner_gateway.observability import metrics
from partner_gateway.store.bulk import Rows
from partner_gateway.store.commit_hooks import after_commit
from partner_gateway.store.message_stats import StatsDelta
from partner_gateway.store.repositories.delivery.callback_events import HAS_TARGET, Change, record_changes
from partner_gateway.store.tables import callback_settings, messages

# Built once, with their lists as expanding parameters: building and keying a statement per
# call cost more than running it.
IDS: BindParameter[Any] = bindparam("ids", expanding=True)

# Stored values to their members by dictionary look-up: DeliveryStatus(value) and Rank(value)
# cost several times more, for every row a batch reads.
STATUS_BY_VALUE = {status.value: status for status in DeliveryStatus}
RANK_BY_VALUE = {int(rank): rank for rank in Rank}


def status_update(
    table: Table,
    key: ColumnElement[bool],
    description: Column[Any],
    names: Sequence[str],
    extra: dict[Column[Any], Any] | None = None,
) -> Rows:
    """A row's new status, as a message and a part both keep it; its read time is set only if it
    had none (the first read receipt's time stands). `names`: the parameters in the order the
    statement takes them (the table's column order, then `key`'s), which compiling checks;
    `extra`: more columns to set (a message's change counter)."""
    return Rows(
        update(table)
        .where(key)
        .values(
            {
                table.c.status: bindparam("m_status"),
                table.c.status_rank: bindparam("m_rank"),
                description: bindparam("m_description"),
                table.c.error_code: bindparam("m_error"),
                table.c.updated_at: bindparam("m_now"),
                table.c.read_at: func.coalesce(table.c.read_at, bindparam("m_read_at", type_=BigInteger)),
                **(extra or {}),
            }
        ),
        names,
    )


def read_update(
    table: Table, key: ColumnElement[bool], names: Sequence[str], extra: dict[Column[Any], Any] | None = None
) -> Rows:
    """A row's read time, set only if it had none."""
    return Rows(
        update(table)
        .where(key)
        .values(
            {
                table.c.read_at: func.coalesce(table.c.read_at, bindparam("m_read_at", type_=BigInteger)),
                **(extra or {}),
            }
        ),
        names,
    )


@dataclass(slots=True)
class _MessageRow:
    """A message's status as the batch holds it, and what the batch changed in it."""

    status: DeliveryStatus
    rank: Rank
    read_at: int | None
    fallback_for: str | None
    channel: str
    created_at: int
    changes: int
    """status_changes: how many changes the message has had, this batch's included."""
    targeted: bool
    """Whether its changes are callback events."""
    company_id: str
    stored_status: str
    """Its status and error code as read: the aggregates' row it leaves (store/message_stats.py)."""
    stored_error: str | None
    description: str = ""
    error_code: str | None = None
    status_changed: bool = False
    read_changed: bool = False
    was_final: bool = False  # final when read: a later change does not end its delivery again

    def __post_init__(self) -> None:
        self.was_final = self.status in FINAL_STATUSES


_SELECT_STATUSES = (
    select(
        messages.c.id,
        messages.c.status,
        messages.c.status_rank,
        messages.c.read_at,
        messages.c.fallback_for,
        messages.c.channel,
        messages.c.created_at,
        messages.c.status_changes,
        HAS_TARGET,
        messages.c.company_id,
        messages.c.error_code,
    )
    .select_from(
        messages.outerjoin(callback_settings, callback_settings.c.company_id == messages.c.company_id)
    )
    .where(messages.c.id.in_(IDS))
    .order_by(messages.c.id)
    .with_for_update(of=messages, key_share=True)  # see part_batch.py's PARTS_WITH_STATUSES
)
_MESSAGE_KEY = messages.c.id == bindparam("m_id")
_CHANGES: dict[Column[Any], Any] = {messages.c.status_changes: bindparam("m_changes")}
_UPDATE_MESSAGE_STATUS = status_update(
    messages,
    _MESSAGE_KEY,
    messages.c.status_description,
    ("m_status", "m_rank", "m_description", "m_error", "m_now", "m_read_at", "m_changes", "m_id"),
    _CHANGES,
)
_UPDATE_MESSAGE_READ = read_update(messages, _MESSAGE_KEY, ("m_read_at", "m_changes", "m_id"), _CHANGES)


def _count_changes(rows: list[_MessageRow], now: int) -> None:
    """The committed status changes, for /metrics (observability/metrics.py)."""
    for row in rows:
        metrics.status_changed(
            row.channel,
            row.status.value,
            row.error_code,
            became_final=row.status in FINAL_STATUSES and not row.was_final,
            seconds_since_accepted=(now - row.created_at) / 1000,
        )


async def _write_stats(connection: AsyncConnection, rows: list[_MessageRow], now: int) -> None:
    """The changed messages moved between the aggregates' rows; the latency of those that became
    final (once: a final status's later change does not end its delivery again)."""
    delta = StatsDelta()
    for row in rows:
        delta.move(
            row.company_id,
            row.channel,
            row.created_at,
            (row.stored_status, row.stored_error),
            (row.status.value, row.error_code),
        )
        if row.status in FINAL_STATUSES and not row.was_final:
            delta.became_final(row.company_id, row.channel, row.created_at, now)
    await delta.write(connection)


class Statuses:
    """The statuses of the messages a batch of reports is about: read once, changed in memory
    report by report (so reports for one message apply in order, as they would one by one), and
    written back once."""

    def __init__(self, connection: AsyncConnection, now: int) -> None:
        self._connection = connection
        self._now = now
        self._rows: dict[str, _MessageRow | None] = {}
        self._changes: list[Change] = []  # of targeted messages, in the order they happened

    async def load(self, message_ids: Iterable[str]) -> None:
        wanted = {message_id for message_id in message_ids if message_id not in self._rows}
        if not wanted:
            return
        rows = await self._connection.execute(_SELECT_STATUSES, {"ids": list(wanted)})
        for row in rows:
            self.add(*row)
        for message_id in wanted:
            self.add(message_id, None, None, None, None, "", 0, 0, False, "", None)  # no such message

    def add(
        self,
        message_id: str,
        status: str | None,
        rank: int | None,
        read_at: int | None,
        fallback_for: str | None,
        channel: str,
        created_at: int,
        changes: int,
        targeted: bool,
        company_id: str,
        error_code: str | None,
    ) -> None:
        """A message's status as read (None: no such message), unless read before."""
        if message_id in self._rows:
            return
        if status is None or rank is None:
            self._rows[message_id] = None
        else:
            self._rows[message_id] = _MessageRow(
                STATUS_BY_VALUE[status],
                RANK_BY_VALUE[rank],
                read_at,
                fallback_for,
                channel,
                created_at,
                changes,
                bool(targeted),
                company_id,
                status,
                error_code,
            )

    async def apply(self, message_id: str, report: ReportedStatus, *, read_at: int | None) -> bool:
        """Apply a report to the message (in memory); True when it changed its status. A fallback
        SMS passes what changed it on to its RCS original (domain/sms_fallback.py)."""
        await self.load([message_id])  # read already, but for the original of a fallback SMS
        row = self._rows[message_id]
        if row is None:
            return False
        transition = decide(CurrentState(row.status, row.rank), report)
        if transition.changes_status:
            row.status, row.rank = report.status, transition.new_rank
            row.description = report.description[:300]
            row.error_code = kept_error_code(report.status, report.error_code)
            row.status_changed = True
        read_now = read_at is not None and row.read_at is None
        if read_now:
            row.read_at = read_at
            row.read_changed = True
        if transition.changes_status or read_now:
            row.changes += 1
            if row.targeted:  # a snapshot of the message right after this change
                self._changes.append(
                    Change(
                        message_id,
                        row.changes,
                        row.status,
                        row.description,
                        row.error_code,
                        row.read_at,
                        self._now if row.status_changed else None,
                    )
                )
        if row.fallback_for:
            original = onto_original(
                message_id, report, changed_status=transition.changes_status, read=read_at is not None
            )
            if original is not None:
                await self.apply(row.fallback_for, original, read_at=read_at)
        return transition.changes_status

    async def write(self) -> None:
        """The changed rows, and a callback event for each change of a targeted message (in the
        same transaction: no change without its event, no event without its change)."""
        # Before the updates: a read-only change's snapshot keeps the updatedAt it had.
        await record_changes(self._connection, self._changes, self._now)
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
                row.changes,
                message_id,
            )
            for message_id, row in changed
            if row.status_changed
        ]
        reads = [
            (row.read_at, row.changes, message_id)
            for message_id, row in changed
            if row.read_changed and not row.status_changed
        ]
        await _UPDATE_MESSAGE_STATUS.execute(self._connection, statuses)
        await _UPDATE_MESSAGE_READ.execute(self._connection, reads)
        changes = [row for _, row in changed if row.status_changed]
        await _write_stats(self._connection, changes, self._now)
        if changes:
            after_commit(self._connection, partial(_count_changes, changes, self._now))
