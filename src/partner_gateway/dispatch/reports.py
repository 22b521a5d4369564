"""Recording what providers report: receipts and webhooks become timeline entries and statuses."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.dispatch.fallback import fall_back_on_revocations
from partner_gateway.dispatch.inbound import InboundRecorder
from partner_gateway.domain.inbound import DEFAULT_KEYWORDS, InboundMessage, InboundPart, OptKeywords
from partner_gateway.domain.reports import StatusReport
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.errors import Unavailable
from partner_gateway.observability import metrics
from partner_gateway.store.batching import BulkOperation, WriteBatcher
from partner_gateway.store.outages import store_unavailable
from partner_gateway.store.repositories import delivery

logger = logging.getLogger(__name__)


async def apply_reports(connection: AsyncConnection, reports: Sequence[StatusReport]) -> list[str]:
    now = now_ms()
    # A channel's give-up on a message that asked for a fallback on it sends the SMS instead.
    return await delivery.apply_provider_reports(
        connection, await fall_back_on_revocations(connection, reports, now), now
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


async def apply_waiting(connection: AsyncConnection, reports: Sequence[StatusReport]) -> None:
    """Apply reports that were kept until their message could be found."""
    if reports:
        await apply_reports(connection, reports)


class ReportRecorder:
    """The ReportSink every provider writes to; returns once the reports are committed."""

    def __init__(self, batcher: WriteBatcher, keywords: OptKeywords = DEFAULT_KEYWORDS) -> None:
        self._batcher = batcher
        self.inbound = InboundRecorder(batcher, keywords)
        self.applied = 0
        self.duplicates = 0
        self.pending = 0

    async def record(self, reports: Sequence[StatusReport]) -> None:
        """Raises `Unavailable` when the store cannot take them now: the provider answers so that
        they are offered again (an SMPP temporary error, a webhook's 503)."""
        try:
            outcomes = await self._batcher.submit_bulk(APPLY_REPORTS, reports)
        except Exception as error:
            if store_unavailable(error):
                raise Unavailable(f"the store cannot record reports now: {type(error).__name__}") from error
            raise
        metrics.reports_recorded(zip((report.provider for report in reports), outcomes, strict=True))
        self.applied += outcomes.count("applied")
        self.duplicates += outcomes.count("duplicate")
        self.pending += outcomes.count("pending")

    async def receive(self, items: Sequence[InboundMessage | InboundPart]) -> None:
        """Store what users sent (dispatch/inbound.py); raises `Unavailable` as `record` does."""
        await self.inbound.receive(items)
