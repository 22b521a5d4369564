"""Parked reports nothing claims (dispatch/unmatched.py): reported with their likely cause, the
ones matching ours in another notation named, and dropped after their time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from partner_gateway.dispatch.unmatched import (
    PARKED_REPORT_TTL_SECONDS,
    UNMATCHED_AFTER_SECONDS,
    OtherNotation,
    UnmatchedReports,
    other_notations,
)
from partner_gateway.domain.reports import StatusReport
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.report_counters import REPORT_COUNTERS
from partner_gateway.runtime import Runtime
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.repositories import delivery
from partner_gateway.store.tables import pending_reports
from support import seed

T0 = 1_795_000_000_000
CARRIER = "smpp:acme"


def receipt(key: str, provider: str = CARRIER) -> StatusReport:
    return StatusReport(
        provider=provider,
        provider_key=key,
        status=DeliveryStatus.DELIVERED,
        raw_state="DELIVRD",
        description="Delivered to the handset",
        occurred_at=T0,
        dedup_key=f"smpp:{key}:DELIVRD",
    )


@pytest.fixture
async def batcher(runtime: Runtime) -> AsyncIterator[WriteBatcher]:
    started = WriteBatcher(runtime.database)
    started.start()
    yield started
    await started.stop()


async def parked_count(runtime: Runtime) -> int:
    async with runtime.database.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(pending_reports))).scalar_one())


async def test_unmatched_reports_are_told_with_their_cause_then_dropped(
    runtime: Runtime, batcher: WriteBatcher, caplog: pytest.LogCaptureFixture
) -> None:
    [message_id] = await seed(runtime, "cmp_a", [T0])
    async with runtime.database.write() as connection:
        # The carrier answered submit_sm with the decimal id 6699 ("same": kept as given) ...
        await delivery.record_parts(
            connection, message_id, CARRIER, [delivery.PartRecord(1, 1, "6699", "6699")], T0
        )
        # ... but writes receipt ids in hex (0x1a2b = 6699); another receipt is for nobody's message.
        outcomes = await delivery.apply_provider_reports(
            connection, [receipt("1a2b"), receipt("77777777777"), receipt("wamid.x", "whatsapp")], T0
        )
    assert outcomes == ["pending", "pending", "pending"]
    before = REPORT_COUNTERS.snapshot()
    watch = UnmatchedReports(batcher)

    early = await watch.check_once(now=T0 + (UNMATCHED_AFTER_SECONDS - 1) * 1000)
    assert (early.unmatched, early.other_notation, early.expired) == ({}, [], {})

    found = await watch.check_once(now=T0 + (UNMATCHED_AFTER_SECONDS + 1) * 1000)
    assert found.unmatched == {CARRIER: 2, "whatsapp": 1}
    assert found.other_notation == [OtherNotation(CARRIER, "1a2b", "6699", message_id)]
    assert found.expired == {}
    assert f"the receipt id 1a2b matches our message {message_id} only read as hex" in caplog.text
    assert "1 of them match our submissions in another notation" in caplog.text
    assert "receipt_id_format" in caplog.text
    assert "whatsapp: 1 reports matched no message of ours" in caplog.text
    after = REPORT_COUNTERS.snapshot()
    assert after["unmatched"][CARRIER] - before["unmatched"].get(CARRIER, 0) == 2
    assert after["other_notation"][CARRIER] - before["other_notation"].get(CARRIER, 0) == 1

    again = await watch.check_once(now=T0 + (UNMATCHED_AFTER_SECONDS + 40) * 1000)
    assert again.unmatched == {}  # each report is told once
    # ... by whichever process looks: another worker's watch on the same store tells nothing new.
    other_worker = await UnmatchedReports(batcher).check_once(now=T0 + (UNMATCHED_AFTER_SECONDS + 41) * 1000)
    assert (other_worker.unmatched, other_worker.other_notation) == ({}, [])
    assert await parked_count(runtime) == 3  # still parked: a late submission record may come

    dropped = await watch.check_once(now=T0 + (PARKED_REPORT_TTL_SECONDS + 1) * 1000)
    assert dropped.expired == {CARRIER: 2, "whatsapp": 1}
    assert await parked_count(runtime) == 0
    assert f"{CARRIER}: dropped 2 parked reports unapplied after {PARKED_REPORT_TTL_SECONDS} s" in caplog.text
    assert REPORT_COUNTERS.snapshot()["expired"][CARRIER] - before["expired"].get(CARRIER, 0) == 2


async def test_a_report_applied_in_time_is_never_told(runtime: Runtime, batcher: WriteBatcher) -> None:
    [message_id] = await seed(runtime, "cmp_a", [T0])
    async with runtime.database.write() as connection:
        await delivery.apply_provider_reports(connection, [receipt("abc")], T0)
        await delivery.record_parts(
            connection, message_id, CARRIER, [delivery.PartRecord(1, 1, "abc", "abc")], T0
        )
        assert len(await delivery.take_pending_with_parts(connection, 10)) == 1
    found = await UnmatchedReports(batcher).check_once(now=T0 + (PARKED_REPORT_TTL_SECONDS + 1) * 1000)
    assert (found.unmatched, found.expired) == ({}, {})


@pytest.mark.parametrize(
    ("key", "forms"),
    [
        ("6699", ["1a2b", "26265"]),  # decimal read as hex is 0x6699 too
        ("1a2b", ["6699"]),
        ("wamid.hbgl", []),
        ("cf0aaf09-9e64-5c20-8db7-1b271f36949f", []),
        ("0", []),
    ],
)
def test_other_notations(key: str, forms: list[str]) -> None:
    assert other_notations(key) == forms
