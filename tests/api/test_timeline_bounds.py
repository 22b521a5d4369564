"""Timelines never before acceptance, readAt never before createdAt (issue 17): providers' clocks
are coarse (an SMPP done date has minutes), so a report can claim a time before we accepted the
message; the time the provider gave is kept beside it."""

from __future__ import annotations

import httpx

from partner_gateway.domain.messages import MessageEvent
from partner_gateway.domain.reports import StatusReport
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.domain.timefmt import format_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import delivery
from support import BASE, Partner, seed

T0 = 1_795_000_030_123  # accepted at 10:15:30.123
PROVIDER = "whatsapp"


def report(key: str, raw: str, status: DeliveryStatus, at: int, *, read: bool = False) -> StatusReport:
    return StatusReport(
        provider=PROVIDER,
        provider_key=key,
        status=status,
        raw_state=raw,
        description=f"provider says {raw}",
        occurred_at=at,
        dedup_key=f"{key}:{raw}",
        is_read=read,
        is_final=True,
    )


async def test_reports_dated_before_acceptance_read_as_at_acceptance(
    client: httpx.AsyncClient, runtime: Runtime, partner: Partner
) -> None:
    [message_id] = await seed(runtime, partner.company_id, [T0], channel="WHATSAPP")
    key = f"wamid.{message_id}"
    async with runtime.database.write() as connection:
        await delivery.record_parts(
            connection, message_id, PROVIDER, [delivery.PartRecord(1, 1, key, key)], T0
        )
        # The provider's clock says a minute before we accepted it; and one event after.
        await delivery.apply_provider_reports(
            connection,
            [
                report(key, "delivered", DeliveryStatus.DELIVERED, T0 - 30_123),
                report(key, "read", DeliveryStatus.DELIVERED, T0 - 10_000, read=True),
            ],
            T0 + 1_000,
        )
    status = (
        await client.get(f"{BASE}/messages/status/{message_id}?channel=WHATSAPP", headers=partner.headers)
    ).json()
    assert status["readAt"] == status["createdAt"] == format_ms(T0)
    events = (
        await client.get(f"{BASE}/messages/{message_id}/events?channel=WHATSAPP", headers=partner.headers)
    ).json()["events"]
    provider_events = [event for event in events if event["source"] == PROVIDER]
    assert [event["occurredAt"] for event in provider_events] == [format_ms(T0)] * 2
    assert [event["providerOccurredAt"] for event in provider_events] == [
        format_ms(T0 - 30_123),
        format_ms(T0 - 10_000),
    ]
    assert all(event["occurredAt"] >= status["createdAt"] for event in events)
    assert all("providerOccurredAt" not in event for event in events if event["source"] != PROVIDER)


def test_an_event_after_acceptance_is_unchanged() -> None:
    event = MessageEvent(T0 + 5, T0 + 6, "rcs", DeliveryStatus.DELIVERED, "DELIVERED", "Delivered", None)
    assert event.at_or_after(T0) is event
    moved = MessageEvent(T0 - 5, T0 + 6, "rcs", None, "x", "x", None).at_or_after(T0)
    assert (moved.occurred_at, moved.reported_at) == (T0, T0 - 5)
