"""Recording what providers report: receipts and webhooks become timeline entries and statuses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.channels.base import StatusReport
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.store.batching import BulkOperation, WriteBatcher
from partner_gateway.store.repositories import delivery

logger = logging.getLogger(__name__)
REPORT_VERSION = 1


def to_payload(report: StatusReport) -> dict[str, Any]:
    """A report as versioned JSON (kept while it waits for its submission; later, queued)."""
    data = asdict(report)
    data["status"] = report.status.value if report.status else None
    data["details"] = dict(report.details)
    return {"v": REPORT_VERSION, "report": data}


def from_payload(payload: dict[str, Any]) -> StatusReport:
    if payload.get("v") != REPORT_VERSION:
        raise ValueError(f"unsupported report version {payload.get('v')!r}")
    data = dict(payload["report"])
    data["status"] = DeliveryStatus(data["status"]) if data["status"] else None
    return StatusReport(**data)


def _resolved(report: StatusReport) -> delivery.ProviderReport:
    return delivery.ProviderReport(
        provider=report.provider,
        provider_key=report.provider_key,
        message_id=report.message_id,
        status=report.status,
        raw_state=report.raw_state,
        description=report.description,
        error_code=report.error_code,
        occurred_at=report.occurred_at,
        dedup_key=report.dedup_key,
        is_read=report.is_read,
        payload=partial(to_payload, report),
        destination=_text(report.details.get("destination")),
        text_excerpt=_excerpt(report.details.get("text_excerpt")),
    )


def _excerpt(value: Any) -> str | None:
    """The first 20 characters, as SMPP receipts quote them (see dispatch/unanswered.py)."""
    return str(value)[:20].strip() or None if value else None


def _text(value: Any) -> str | None:
    return str(value).lstrip("+") if value else None


async def apply_reports(connection: AsyncConnection, reports: Sequence[StatusReport]) -> list[str]:
    return await delivery.apply_provider_reports(
        connection, [_resolved(report) for report in reports], now_ms()
    )


async def _apply_report_lists(
    connection: AsyncConnection, report_lists: Sequence[Sequence[StatusReport]]
) -> list[list[str]]:
    """Every report recorded for one batch, applied together; each caller's outcomes back."""
    outcomes = iter(
        await apply_reports(connection, [report for reports in report_lists for report in reports])
    )
    return [[next(outcomes) for _ in reports] for reports in report_lists]


APPLY_REPORTS = BulkOperation("apply reports", _apply_report_lists)


async def apply_waiting(connection: AsyncConnection, payloads: Sequence[dict[str, Any]]) -> None:
    """Apply reports that were kept (as payloads) until their message could be found."""
    if payloads:
        await apply_reports(connection, [from_payload(payload) for payload in payloads])


class ReportRecorder:
    """The ReportSink every provider writes to; returns once the reports are committed."""

    def __init__(self, batcher: WriteBatcher) -> None:
        self._batcher = batcher
        self.applied = 0
        self.duplicates = 0
        self.pending = 0

    async def record(self, reports: Sequence[StatusReport]) -> None:
        outcomes = await self._batcher.submit_bulk(APPLY_REPORTS, reports)
        self.applied += outcomes.count("applied")
        self.duplicates += outcomes.count("duplicate")
        self.pending += outcomes.count("pending")
