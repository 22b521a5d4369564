"""Applying reports: each a timeline entry, then the part's and the message's status change.

A report (domain/reports.py `StatusReport`) is applied one of two ways: the gateway's own
decisions go to the message they name (`apply_gateway_reports`), a provider's to the part its id
names (`apply_provider_reports`), parked until that part is recorded.

Both kinds take many reports at once, with the outcome of applying them one by one: the entries
are stored in one statement (events.py), and the rows they change are read once, changed in
memory report by report and written back once (status_batch.py, part_batch.py). The rules are the domain's:
the lifecycle's precedence, a multipart message's aggregate, a fallback SMS's original.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.lifecycle import ReportedStatus
from partner_gateway.domain.multipart import message_report, part_description
from partner_gateway.domain.reports import StatusReport
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.store.repositories.delivery.events import event, insert_events
from partner_gateway.store.repositories.delivery.handovers import adopt_for_receipt
from partner_gateway.store.repositories.delivery.outcomes import ReportOutcome
from partner_gateway.store.repositories.delivery.parked import park
from partner_gateway.store.repositories.delivery.part_batch import PartRow, Parts
from partner_gateway.store.repositories.delivery.status_batch import Statuses


async def apply_gateway_report(connection: AsyncConnection, report: StatusReport, now: int) -> bool:
    """Record a status the gateway decided for the message the report names; True when it
    changed the message."""
    return (await apply_gateway_reports(connection, [report], now))[0]


async def apply_gateway_reports(
    connection: AsyncConnection, reports: Sequence[StatusReport], now: int
) -> list[bool]:
    """`apply_gateway_report` for many, in order: four statements, whatever their number."""
    message_ids = [_message_of(report) for report in reports]
    inserted = await insert_events(
        connection,
        [event(message_id, report, now) for message_id, report in zip(message_ids, reports, strict=True)],
    )
    messages_ = Statuses(connection, now)
    await messages_.load(message_id for message_id, new in zip(message_ids, inserted, strict=True) if new)
    changed = []
    for message_id, report, new in zip(message_ids, reports, inserted, strict=True):
        stated = report.reported_status
        changed.append(new and stated is not None and await messages_.apply(message_id, stated, read_at=None))
    await messages_.write()
    return changed


def _message_of(report: StatusReport) -> str:
    if report.message_id is None:
        raise ValueError(f"a status the gateway decides names its message: {report!r}")
    return report.message_id


async def apply_provider_report(connection: AsyncConnection, report: StatusReport, now: int) -> str:
    """Apply one provider report. Returns 'applied', 'duplicate' or 'pending' (no part yet)."""
    return (await apply_provider_reports(connection, [report], now))[0]


async def apply_provider_reports(
    connection: AsyncConnection, reports: Sequence[StatusReport], now: int
) -> list[str]:
    """Apply provider reports in order, as if one by one; a `ReportOutcome` ('applied',
    'duplicate' or 'pending': no part yet) for each. A handful of statements, whatever their
    number: the parts and messages are read once, changed in memory report by report, and
    written back once."""
    messages_ = Statuses(connection, now)
    parts = Parts(connection, messages_)
    await parts.find(reports)
    for report in reports:
        # Rare: a carrier id no submission has. It may be that of a hand-over that got no answer.
        if parts.of(report) is None and await adopt_for_receipt(connection, report, now):
            await parts.find([report])
    outcomes: list[str] = [ReportOutcome.PENDING] * len(reports)
    found: list[tuple[int, StatusReport, PartRow]] = []
    waiting: list[StatusReport] = []
    for index, report in enumerate(reports):
        part = parts.of(report)
        if part is not None:
            found.append((index, report, part))
        elif report.provider_key is not None:
            waiting.append(report)  # until its submission is recorded (take_pending, take_pending_with_parts)
    await park(connection, waiting, now)
    inserted = await insert_events(
        connection,
        [
            event(
                part.message_id,
                report,
                now,
                part_description(report.description, part.part_no, part.parts_total),
            )
            for _index, report, part in found
        ],
    )
    changing: list[tuple[StatusReport, DeliveryStatus, PartRow]] = []
    for (index, report, part), new in zip(found, inserted, strict=True):
        outcomes[index] = ReportOutcome.APPLIED if new else ReportOutcome.DUPLICATE
        if new and report.status is not None:
            changing.append((report, report.status, part))
    await parts.load_messages({part.message_id for _, _, part in changing if part.parts_total > 1})
    for report, status, part in changing:
        transition = part.apply(
            ReportedStatus(status, report.description, report.error_code, is_read=report.is_read),
            read_at=report.occurred_at,
        )
        await messages_.apply(
            part.message_id,
            message_report(parts.states(part.message_id, part.parts_total)),
            read_at=report.occurred_at if transition.sets_read else None,
        )
    await parts.write(now)
    await messages_.write()
    return outcomes
