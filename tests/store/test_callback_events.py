"""A status change of a message with a callback target writes its event in the same transaction:
one per change (several in one batch), each a snapshot right after it, sequenced per message."""

from __future__ import annotations

import json

from sqlalchemy import select, update

from partner_gateway.domain.reports import GATEWAY, StatusReport
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.domain.timefmt import format_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.callback_settings import CallbackSettingsRepository
from partner_gateway.store.tables import callback_events, messages
from support import Partner, seed

T0 = 1_795_000_000_000


def report(message_id: str, status: DeliveryStatus, raw: str, at: int = T0 + 1_000) -> StatusReport:
    return StatusReport(
        GATEWAY, status, raw, f"gateway says {raw}", at, f"{message_id}:{raw}", message_id=message_id
    )


async def events_of(runtime: Runtime, message_id: str) -> list[dict[str, object]]:
    async with runtime.database.read() as connection:
        rows = await connection.execute(
            select(callback_events)
            .where(callback_events.c.message_id == message_id)
            .order_by(callback_events.c.sequence)
        )
        return [dict(row._mapping) for row in rows]


async def with_url(runtime: Runtime, message_ids: list[str], url: str) -> None:
    async with runtime.database.write() as connection:
        await connection.execute(
            update(messages).where(messages.c.id.in_(message_ids)).values(callback_url=url)
        )


async def test_each_change_of_one_batch_is_an_event_with_its_own_snapshot(
    runtime: Runtime, partner: Partner
) -> None:
    [message_id] = await seed(runtime, partner.company_id, [T0])
    await with_url(runtime, [message_id], "https://partner.example/cb")
    async with runtime.database.write() as connection:
        changed = await delivery.apply_gateway_reports(
            connection,
            [
                report(message_id, DeliveryStatus.SENT, "accepted"),
                report(message_id, DeliveryStatus.DELIVERED, "delivered"),
                report(message_id, DeliveryStatus.SENT, "late"),  # a lower rank: no change, no event
            ],
            T0 + 2_000,
        )
    assert changed == [True, True, False]
    events = await events_of(runtime, message_id)
    assert [event["sequence"] for event in events] == [1, 2]
    assert {event["state"] for event in events} == {"pending"}
    assert all(event["url"] == "https://partner.example/cb" for event in events)
    bodies = [json.loads(str(event["body"])) for event in events]
    assert [body["deliveryStatus"] for body in bodies] == ["SENT", "DELIVERED"]
    assert [body["sequence"] for body in bodies] == [1, 2]
    assert [body["eventId"] for body in bodies] == [event["id"] for event in events]
    assert bodies[0]["deliveryStatusDescription"] == "gateway says accepted"
    assert bodies[0]["customerMessageId"] == message_id
    assert bodies[0]["occurredAt"] == bodies[0]["updatedAt"] == format_ms(T0 + 2_000)
    assert set(bodies[0]) >= {"channel", "to", "reference", "errorCode", "createdAt", "eventId", "occurredAt"}
    async with runtime.database.read() as connection:
        counter = (
            await connection.execute(select(messages.c.status_changes).where(messages.c.id == message_id))
        ).scalar()
    assert counter == 2


async def test_a_message_without_a_target_gets_no_event_but_is_counted(
    runtime: Runtime, partner: Partner
) -> None:
    [message_id] = await seed(runtime, partner.company_id, [T0])
    async with runtime.database.write() as connection:
        await delivery.apply_gateway_reports(
            connection, [report(message_id, DeliveryStatus.SENT, "accepted")], T0 + 1
        )
    assert await events_of(runtime, message_id) == []
    # The company sets a default URL: the next change is an event, its sequence the message's count.
    async with runtime.database.write() as connection:
        await CallbackSettingsRepository(connection, runtime.callback_secrets).set_url(
            partner.company_id, "https://partner.example/default", T0 + 2
        )
        await delivery.apply_gateway_reports(
            connection, [report(message_id, DeliveryStatus.ERROR, "rejected")], T0 + 3
        )
    [event] = await events_of(runtime, message_id)
    assert event["sequence"] == 2
    assert event["url"] is None  # the company's default, as it is at each attempt


async def test_a_read_receipt_is_a_change_and_keeps_updated_at(runtime: Runtime, partner: Partner) -> None:
    [message_id] = await seed(runtime, partner.company_id, [T0], channel="WHATSAPP")
    await with_url(runtime, [message_id], "https://partner.example/cb")
    key = f"wamid.{message_id}"
    async with runtime.database.write() as connection:
        await delivery.record_parts(
            connection, message_id, "whatsapp", [delivery.PartRecord(1, 1, key, key)], T0
        )

    def provider(status: DeliveryStatus, raw: str, *, read: bool = False) -> StatusReport:
        return StatusReport(
            "whatsapp", status, raw, raw, T0 + 5_000, f"{key}:{raw}", provider_key=key, is_read=read
        )

    async with runtime.database.write() as connection:
        await delivery.apply_provider_reports(
            connection, [provider(DeliveryStatus.DELIVERED, "delivered")], T0 + 6_000
        )
    async with runtime.database.write() as connection:
        await delivery.apply_provider_reports(
            connection, [provider(DeliveryStatus.DELIVERED, "read", read=True)], T0 + 9_000
        )
    async with runtime.database.write() as connection:  # read twice: no change, no event
        await delivery.apply_provider_reports(
            connection, [provider(DeliveryStatus.DELIVERED, "read-again", read=True)], T0 + 9_500
        )
    events = await events_of(runtime, message_id)
    bodies = [json.loads(str(event["body"])) for event in events]
    assert [(body["sequence"], body["deliveryStatus"], "readAt" in body) for body in bodies] == [
        (1, "DELIVERED", False),
        (2, "DELIVERED", True),
    ]
    assert bodies[1]["updatedAt"] == bodies[0]["updatedAt"]  # the last status change's time
    assert bodies[1]["occurredAt"] != bodies[1]["updatedAt"]
