"""Applying reports: each a timeline entry, then the part's and the message's status change.

Both kinds take many reports at once, with the outcome of applying them one by one: the entries
are stored in one statement (events.py), and the rows they change are read once, changed in
memory report by report and written back once (status_batch.py). The rules are the domain's:
the lifecycle's precedence, a multipart message's aggregate, a fallback SMS's original.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.lifecycle import Report
from partner_gateway.domain.multipart import message_report, part_description
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.store.repositories.delivery.events import event, insert_events
from partner_gateway.store.repositories.delivery.handovers import adopt_for_receipt
from partner_gateway.store.repositories.delivery.parked import park
from partner_gateway.store.repositories.delivery.report_types import (
    GatewayReport,
    GatewayStatus,
    ProviderReport,
    ReportOutcome,
)
from partner_gateway.store.repositories.delivery.status_batch import PartRow, Parts, Statuses


async def apply_gateway_report(
    connection: AsyncConnection, message_id: str, report: GatewayReport, now: int, source: str = "gateway"
) -> bool:
    """Record a status the gateway decided; True when it changed the message."""
    return (await apply_gateway_reports(connection, [GatewayStatus(message_id, report, source)], now))[0]


async def apply_gateway_reports(
    connection: AsyncConnection, statuses: Sequence[GatewayStatus], now: int
) -> list[bool]:
    """`apply_gateway_report` for many, in order: four statements, whatever their number."""
    inserted = await insert_events(
        connection,
        [
            event(
                item.message_id,
                occurred_at=now,
                recorded_at=now,
                source=item.source,
                status=item.report.status,
                raw_state=item.report.raw_state,
                description=item.report.description,
                error_code=item.report.error_code,
                dedup_key=item.report.dedup_key,
            )
            for item in statuses
        ],
    )
    messages_ = Statuses(connection, now)
    await messages_.load(item.message_id for item, new in zip(statuses, inserted, strict=True) if new)
    changed = []
    for item, new in zip(statuses, inserted, strict=True):
        report = item.report
        changed.append(
            new
            and await messages_.apply(
                item.message_id,
                Report(report.status, report.description, report.error_code, queued=report.queued),
                read_at=None,
            )
        )
    await messages_.write()
    return changed


async def apply_provider_report(connection: AsyncConnection, report: ProviderReport, now: int) -> str:
    """Apply one provider report. Returns 'applied', 'duplicate' or 'pending' (no part yet)."""
    return (await apply_provider_reports(connection, [report], now))[0]


async def apply_provider_reports(
    connection: AsyncConnection, reports: Sequence[ProviderReport], now: int
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
    found: list[tuple[int, ProviderReport, PartRow]] = []
    waiting: list[ProviderReport] = []
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
                occurred_at=report.occurred_at,
                recorded_at=now,
                source=report.provider,
                status=report.status,
                raw_state=report.raw_state,
                description=part_description(report.description, part.part_no, part.parts_total),
                error_code=report.error_code,
                dedup_key=report.dedup_key,
            )
            for _index, report, part in found
        ],
    )
    changing: list[tuple[ProviderReport, DeliveryStatus, PartRow]] = []
    for (index, report, part), new in zip(found, inserted, strict=True):
        outcomes[index] = ReportOutcome.APPLIED if new else ReportOutcome.DUPLICATE
        if new and report.status is not None:
            changing.append((report, report.status, part))
    await parts.load_messages({part.message_id for _, _, part in changing if part.parts_total > 1})
    for report, status, part in changing:
        transition = part.apply(
            Report(status, report.description, report.error_code, is_read=report.is_read),
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
