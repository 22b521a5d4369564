"""Status changes reach /metrics once committed, and only then: by channel and new status, the
error code of a failure, the time from acceptance to a first final status."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.reports import GATEWAY, StatusReport
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.observability.metrics import FINAL_STATUS_LATENCY, MESSAGE_ERRORS, STATUS_CHANGES
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import delivery
from support import Partner, seed


def changes(channel: str, status: str) -> float:
    return STATUS_CHANGES.labels(channel, status)._value.get()


def errors(channel: str, code: str) -> float:
    return MESSAGE_ERRORS.labels(channel, code)._value.get()


def finals(channel: str, status: str) -> float:
    return sum(
        sample.value
        for metric in FINAL_STATUS_LATENCY.collect()
        for sample in metric.samples
        if sample.name.endswith("_count") and sample.labels == {"channel": channel, "status": status}
    )


def report(message_id: str, status: DeliveryStatus, code: str | None = None, key: str = "1") -> StatusReport:
    return StatusReport(
        provider=GATEWAY,
        status=status,
        raw_state=status.value,
        description="test",
        occurred_at=now_ms(),
        dedup_key=f"test:{key}",
        message_id=message_id,
        error_code=code,
        is_final=status is not DeliveryStatus.SENT,
    )


async def test_a_committed_change_is_counted_with_its_code_and_latency(
    runtime: Runtime, partner: Partner
) -> None:
    [message_id] = await seed(runtime, partner.company_id, [now_ms() - 3_000], channel="RCS")
    before = (changes("RCS", "ERROR"), errors("RCS", "test:broken"), finals("RCS", "ERROR"))
    async with runtime.database.write() as connection:
        await delivery.apply_gateway_reports(
            connection, [report(message_id, DeliveryStatus.ERROR, "test:broken")], now_ms()
        )
        assert changes("RCS", "ERROR") == before[0]  # not before the commit
    after = (changes("RCS", "ERROR"), errors("RCS", "test:broken"), finals("RCS", "ERROR"))
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]

    # The same report again changes nothing; a later one on a final message is not a new end.
    async with runtime.database.write() as connection:
        await delivery.apply_gateway_reports(
            connection, [report(message_id, DeliveryStatus.ERROR, "x")], now_ms()
        )
    assert changes("RCS", "ERROR") == after[0]


async def test_a_rolled_back_change_is_not_counted(runtime: Runtime, partner: Partner) -> None:
    [message_id] = await seed(runtime, partner.company_id, [now_ms()], channel="WHATSAPP")
    before = changes("WHATSAPP", "SENT")

    async def fail_after_applying(connection: AsyncConnection) -> None:
        await delivery.apply_gateway_reports(connection, [report(message_id, DeliveryStatus.SENT)], now_ms())
        raise RuntimeError("the transaction fails")

    with pytest.raises(RuntimeError):
        await runtime.writes.submit(fail_after_applying)  # not started: its own transaction
    assert changes("WHATSAPP", "SENT") == before


async def test_a_batch_run_again_isolated_counts_each_change_once(runtime: Runtime, partner: Partner) -> None:
    """One operation of a group commit fails: the batch is rolled back and run again, each
    operation in a savepoint. The change of the one that succeeded is counted once."""
    [message_id] = await seed(runtime, partner.company_id, [now_ms()], channel="SMS")
    before = changes("SMS", "DELIVERED")

    async def deliver(connection: AsyncConnection) -> None:
        await delivery.apply_gateway_reports(
            connection, [report(message_id, DeliveryStatus.DELIVERED, key="d")], now_ms()
        )

    async def broken(_connection: AsyncConnection) -> None:
        raise RuntimeError("fails alone")

    runtime.writes.start()
    try:
        results = await asyncio.gather(
            runtime.writes.submit(deliver), runtime.writes.submit(broken), return_exceptions=True
        )
    finally:
        await runtime.writes.stop()
    assert results[0] is None
    assert isinstance(results[1], RuntimeError)
    assert changes("SMS", "DELIVERED") == before + 1
