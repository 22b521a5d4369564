"""The status changes of one batch of reports: read once, changed in memory, written once.

A batch's reports may touch one message several times (its sent and delivered receipts, every
part of a multipart message, a fallback SMS and its RCS original). `Statuses` and `Parts` read
the rows the batch is about in a few statements, apply each report in memory in order, as the
reports would apply one by one, and write every changed row back in one statement per kind of
change. The reads lock what they read on PostgreSQL (see `_PARTS_WITH_STATUSES`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import BigInteger, Column, Select, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from partner_gateway.domain.lifecycle import CurrentState, ReportedStatus, Transition, decide, kept_error_code
from partner_gateway.domain.multipart import PartState, not_accepted_yet
from partner_gateway.domain.reports import StatusReport
from partner_gateway.domain.sms_fallback import onto_original
from partner_gateway.domain.statuses import FINAL_STATUSES, DeliveryStatus, Rank
from partner_gateway.observability import metrics
from partner_gateway.store.bulk import Rows
from partner_gateway.store.database import after_commit
from partner_gateway.store.repositories.delivery.callback_events import Change, record_changes
from partner_gateway.store.tables import callback_settings, message_parts, messages

# Built once, with their lists as expanding parameters: building and keying a statement per
# call cost more than running it.
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)

# Stored values to their members by dictionary look-up: DeliveryStatus(value) and Rank(value)
# cost several times more, for every row a batch reads.
_STATUSES = {status.value: status for status in DeliveryStatus}
_RANKS = {int(rank): rank for rank in Rank}


def _status_update(
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


def _read_update(
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


# Whether a change of the message is a callback event (SPEC §5): it has its own callbackUrl, or
# its company a default URL. Read with the status, in the same statement: a message without a
# target costs one primary-key probe of callback_settings and nothing else.
_TARGETED = (messages.c.callback_url.is_not(None) | callback_settings.c.url.is_not(None)).label("targeted")

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
        messages.c.channel.label("message_channel"),
        messages.c.created_at.label("message_created_at"),
        messages.c.status_changes,
        _TARGETED,
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
_SELECT_PARTS = _PARTS_WITH_STATUSES.where(message_parts.c.message_id.in_(_IDS))
_SELECT_FIRST_PARTS = _SELECT_PARTS.where(message_parts.c.part_no == 1)
_SELECT_PARTS_BY_KEY = _PARTS_WITH_STATUSES.where(
    message_parts.c.provider == bindparam("provider"), message_parts.c.provider_key.in_(_KEYS)
)
_PART_KEY = (message_parts.c.message_id == bindparam("m_id")) & (
    message_parts.c.part_no == bindparam("m_part")
)
_UPDATE_PART_STATUS = _status_update(
    message_parts,
    _PART_KEY,
    message_parts.c.description,
    ("m_status", "m_rank", "m_error", "m_description", "m_now", "m_read_at", "m_id", "m_part"),
)
_UPDATE_PART_READ = _read_update(message_parts, _PART_KEY, ("m_read_at", "m_id", "m_part"))


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
        ) in await self._connection.execute(statement, parameters):  # _PARTS_WITH_STATUSES's columns
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
                _STATUSES[status],
                _RANKS[rank],
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
        _TARGETED,
    )
    .select_from(
        messages.outerjoin(callback_settings, callback_settings.c.company_id == messages.c.company_id)
    )
    .where(messages.c.id.in_(_IDS))
    .order_by(messages.c.id)
    .with_for_update(of=messages, key_share=True)  # see _PARTS_WITH_STATUSES
)
_MESSAGE_KEY = messages.c.id == bindparam("m_id")
_CHANGES: dict[Column[Any], Any] = {messages.c.status_changes: bindparam("m_changes")}
_UPDATE_MESSAGE_STATUS = _status_update(
    messages,
    _MESSAGE_KEY,
    messages.c.status_description,
    ("m_status", "m_rank", "m_description", "m_error", "m_now", "m_read_at", "m_changes", "m_id"),
    _CHANGES,
)
_UPDATE_MESSAGE_READ = _read_update(messages, _MESSAGE_KEY, ("m_read_at", "m_changes", "m_id"), _CHANGES)


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
        for message_id, status, rank, read_at, fallback_for, channel, created_at, changes, targeted in rows:
            self.add(message_id, status, rank, read_at, fallback_for, channel, created_at, changes, targeted)
        for message_id in wanted:
            self.add(message_id, None, None, None, None, "", 0, 0, False)  # not found: no such message

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
    ) -> None:
        """A message's status as read (None: no such message), unless read before."""
        if message_id in self._rows:
            return
        if status is None or rank is None:
            self._rows[message_id] = None
        else:
            self._rows[message_id] = _MessageRow(
                _STATUSES[status],
                _RANKS[rank],
                read_at,
                fallback_for,
                channel,
                created_at,
                changes,
                bool(targeted),
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
        if changes:
            after_commit(self._connection, partial(_count_changes, changes, self._now))
