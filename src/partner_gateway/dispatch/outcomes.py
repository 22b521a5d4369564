"""What the dispatcher writes to the store for a hand-over: the `written` mark, the provider's
acceptance, a retry, a failure, and the statuses it decides itself.

Every status the dispatcher decides itself is a `StatusReport` built here (`_decided`). The two writes every
hand-over makes are group-committed (`BulkOperation`s): `MARK_WRITTEN` just before the provider
writes, `RECORD_ACCEPTED` with its answer, each one statement or a few for a whole batch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.channels.base import Accepted, SendError, SubmittedPart
from partner_gateway.dispatch.reports import apply_waiting
from partner_gateway.dispatch.retry_policy import Fail
from partner_gateway.domain.reports import GATEWAY, StatusReport
from partner_gateway.domain.statuses import Channel, DeliveryStatus, no_receipt_description
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.store.batching import BulkOperation, WriteBatcher
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.delivery import ClaimedItem, PartRecord, Submission


def _decided(
    message_id: str,
    status: DeliveryStatus,
    description: str,
    raw_state: str,
    dedup_key: str,
    now: int,
    *,
    provider: str = GATEWAY,
    error_code: str | None = None,
    queued: bool = False,
) -> StatusReport:
    """A status the dispatcher decided for a message, at `now`; `provider` when it records a
    provider's answer (its acceptance)."""
    return StatusReport(
        provider, status, raw_state, description, now, dedup_key,
        message_id=message_id, error_code=error_code, queued=queued,
    )  # fmt: skip


async def _mark_written(connection: AsyncConnection, outbox_ids: Sequence[int]) -> list[None]:
    await delivery.mark_written(connection, outbox_ids)
    return [None] * len(outbox_ids)


MARK_WRITTEN = BulkOperation("mark written", _mark_written)
"""Every item about to be written in a batch: one UPDATE."""


async def _record_accepted(
    connection: AsyncConnection, handovers: Sequence[tuple[ClaimedItem, Accepted]]
) -> list[None]:
    """The providers' answers: each message's parts and SENT, its item out of the outbox, and the
    receipts that arrived before the answer was recorded. A few statements for the whole batch."""
    now = now_ms()
    await delivery.record_submissions(
        connection,
        [
            Submission(item.message_id, accepted.provider, _part_records(accepted.parts))
            for item, accepted in handovers
        ],
        now,
    )
    await delivery.apply_gateway_reports(
        connection,
        [
            _decided(
                item.message_id,
                DeliveryStatus.SENT,
                accepted.description,
                accepted.raw_state,
                "gateway:submitted",
                now,
                provider=accepted.provider,
            )
            for item, accepted in handovers
        ],
        now,
    )
    await delivery.finish(connection, [item.outbox_id for item, _ in handovers])
    keys: dict[str, list[str]] = {}
    for _item, accepted in handovers:
        keys.setdefault(accepted.provider, []).extend(part.provider_key for part in accepted.parts)
    for provider, provider_keys in keys.items():
        if provider_keys:
            await apply_waiting(connection, await delivery.take_pending(connection, provider, provider_keys))
    return [None] * len(handovers)


RECORD_ACCEPTED = BulkOperation("record accepted", _record_accepted)
"""Every hand-over the provider accepted in a batch, recorded together."""


def _part_records(parts: Sequence[SubmittedPart]) -> list[PartRecord]:
    return [PartRecord(p.part_no, p.parts_total, p.provider_message_id, p.provider_key) for p in parts]


class WriteGuard:
    """Marks the item `written`, durably, before the provider writes its first byte.
    `on_writing` is called as the mark starts (from then on the hand-over may not be given back)."""

    def __init__(
        self, batcher: WriteBatcher, outbox_id: int, on_writing: Callable[[], None] | None = None
    ) -> None:
        self._batcher = batcher
        self._outbox_id = outbox_id
        self._on_writing = on_writing
        self.written = False

    async def before_write(self, message_id: str) -> None:
        if not self.written:
            if self._on_writing is not None:
                self._on_writing()
            await self._batcher.submit_bulk(MARK_WRITTEN, self._outbox_id)
            self.written = True


class Outcomes:
    """The hand-over's other endings, each one transaction: failed, retried, resent."""

    def __init__(self, batcher: WriteBatcher) -> None:
        self._batcher = batcher

    async def fail(
        self,
        item: ClaimedItem,
        fail: Fail,
        accepted: SendError | None = None,
        *,
        also: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> None:
        """End the message (the parts `accepted` names before the failure kept), and its item;
        `also` runs in the same transaction."""

        async def record(connection: AsyncConnection) -> None:
            now = now_ms()
            if accepted is not None:
                await _record_partial(connection, item, accepted, now)
            report = _decided(
                item.message_id, fail.status, fail.description, fail.dedup, f"gateway:{fail.dedup}", now,
                error_code=fail.code,
            )  # fmt: skip
            await delivery.apply_gateway_report(connection, report, now)
            await delivery.finish(connection, [item.outbox_id])
            if also is not None:
                await also(connection)

        await self._batcher.submit(record)

    async def retry(self, item: ClaimedItem, error: SendError, at: int) -> None:
        """Due again `at`, after the parts accepted so far; the message says it will be retried."""

        async def reschedule(connection: AsyncConnection) -> None:
            now = now_ms()
            parts_done = item.parts_done + len(error.accepted_parts)
            await _record_partial(connection, item, error, now)
            await delivery.reschedule(connection, item.outbox_id, at, error.description, parts_done)
            report = _decided(
                item.message_id, DeliveryStatus.UNKNOWN, f"Will retry: {error.description}",
                f"retry:{error.code or error.kind}", f"gateway:retry:{item.attempts}", now, queued=True,
            )  # fmt: skip
            await delivery.apply_gateway_report(connection, report, now)

        await self._batcher.submit(reschedule)

    async def hand_back(self, item: ClaimedItem) -> None:
        """Never written to the provider, and this worker stops: due again at once, for any worker."""
        await self._batcher.submit(lambda c: delivery.hand_back(c, [item.outbox_id]))

    async def resend(self, item: ClaimedItem, reason: str) -> None:
        """Due again now, though the provider may have it already (PARTNER_GATEWAY_RESEND_AMBIGUOUS)."""
        await self._batcher.submit(
            lambda c: delivery.reschedule(
                c, item.outbox_id, now_ms(), f"ambiguous: {reason}", item.parts_done
            )
        )


async def record_no_receipt(
    connection: AsyncConnection, lapsed: Sequence[tuple[str, Channel]], now: int
) -> None:
    """Messages (id, channel) given up on: past validity and grace without a receipt, UNKNOWN."""
    reports = [
        _decided(
            message_id,
            DeliveryStatus.UNKNOWN,
            no_receipt_description(channel),
            "NO_RECEIPT",
            "gateway:no-receipt",
            now,
        )
        for message_id, channel in lapsed
    ]
    await delivery.apply_gateway_reports(connection, reports, now)


async def _record_partial(connection: AsyncConnection, item: ClaimedItem, error: SendError, now: int) -> None:
    if error.accepted_parts:
        parts = _part_records(error.accepted_parts)
        await delivery.record_parts(connection, item.message_id, error.provider, parts, now)
