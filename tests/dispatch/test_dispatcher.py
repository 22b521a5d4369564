"""The dispatcher and the report recorder on a real store, with a scripted provider at the edge.

The provider stands in for the network to a carrier (the process edge); everything on our side
of it (outbox, group commits, lifecycle, the store) is the real thing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import func, select, update

from partner_gateway.channels.base import (
    Accepted,
    AlwaysAccepting,
    HandoverGuard,
    OutboundMessage,
    ReportSink,
    SendError,
    StatusReport,
    SubmittedPart,
    WebhookRoute,
)
from partner_gateway.config import Settings
from partner_gateway.dispatch.outcomes import RECORD_ACCEPTED
from partner_gateway.dispatch.queues.base import WorkItem
from partner_gateway.dispatch.reports import ReportRecorder
from partner_gateway.dispatch.worker import Dispatcher
from partner_gateway.domain.statuses import (
    Channel,
    DeliveryStatus,
    no_receipt_description,
    unanswered_description,
)
from partner_gateway.domain.timefmt import format_ms, now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.callback_settings import CallbackSettingsRepository
from partner_gateway.store.repositories.delivery import PartRecord
from partner_gateway.store.tables import callback_events, messages, outbox, pending_reports
from support import BASE, Partner


@dataclass
class ScriptedProvider(AlwaysAccepting):
    """Decides by the destination's last two digits, like the simulators (SPEC §6)."""

    name: str = "scripted"
    channel: Channel = Channel.SMS
    parts: int = 1
    sent: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    sink: ReportSink | None = None

    async def start(self, sink: ReportSink) -> None:
        self.sink = sink

    async def stop(self) -> None:
        return None

    def webhook_routes(self) -> Sequence[WebhookRoute]:
        return ()

    async def send(self, message: OutboundMessage, guard: HandoverGuard) -> Accepted:
        tail = message.to[-2:]
        self.attempts[message.message_id] = self.attempts.get(message.message_id, 0) + 1
        if tail == "88" and self.attempts[message.message_id] <= 2:
            raise SendError("throttled", "ESME_RTHROTTLED", code="smpp:0x00000058", retry_after=0.01)
        if tail == "90":
            raise SendError("permanent", "Invalid destination address", code="smpp:0x0000000B")
        await guard.before_write(message.message_id)
        if tail == "97":
            raise SendError("ambiguous", "No submit_sm_resp within 10 s")
        self.sent.append(message.message_id)
        parts = tuple(
            SubmittedPart(
                n, self.parts, f"ID{message.message_id[-6:]}{n}", f"id{message.message_id[-6:]}{n}".lower()
            )
            for n in range(message.parts_done + 1, self.parts + 1)
        )
        return Accepted(self.name, parts, "Accepted by the carrier", "ESME_ROK")


def receipt(
    key: str, status: DeliveryStatus | None, raw: str, *, at: int = 0, read: bool = False
) -> StatusReport:
    return StatusReport(
        provider="scripted",
        status=status,
        raw_state=raw,
        description=f"carrier says {raw}",
        occurred_at=at or now_ms(),
        dedup_key=f"{key}:{raw}:{at}",
        provider_key=key,
        error_code="smpp-err:001" if status is DeliveryStatus.ERROR else None,
        is_read=read,
    )


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"dispatch_poll_seconds": 0.02, "sweep_interval_seconds": 3600})


@pytest.fixture
async def pipeline(
    runtime: Runtime, fast_settings: Settings
) -> AsyncIterator[tuple[Dispatcher, ScriptedProvider, ReportRecorder]]:
    batcher = WriteBatcher(runtime.database)
    batcher.start()
    provider = ScriptedProvider()
    recorder = ReportRecorder(batcher)
    await provider.start(recorder)
    dispatcher = Dispatcher(fast_settings, batcher, {Channel.SMS: provider})
    await dispatcher.start()
    yield dispatcher, provider, recorder
    await dispatcher.stop()
    await batcher.stop()


async def send(client: httpx.AsyncClient, partner: Partner, to: str, **extra: object) -> str:
    response = await client.post(
        f"{BASE}/sms/messages", json={"to": to, "text": "hello", **extra}, headers=partner.headers
    )
    assert response.status_code == 202, response.text
    return str(response.json()["customerMessageId"])


async def status_of(client: httpx.AsyncClient, partner: Partner, message_id: str) -> dict[str, object]:
    response = await client.get(f"{BASE}/messages/status/{message_id}?channel=SMS", headers=partner.headers)
    return dict(response.json())


async def wait_for(
    client: httpx.AsyncClient, partner: Partner, message_id: str, status: str
) -> dict[str, object]:
    for _ in range(200):
        body = await status_of(client, partner, message_id)
        if body["deliveryStatus"] == status:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"{message_id} never reached {status}: {body}")


async def wait_until_given_up(client: httpx.AsyncClient, partner: Partner, message_id: str) -> None:
    """Wait (up to 10 s: a slow machine's PostgreSQL run needed more than 2) until the message is
    UNKNOWN and "not sent again", the state an unanswered hand-over ends in."""
    for _ in range(500):
        body = await status_of(client, partner, message_id)
        if "not sent again" in str(body["deliveryStatusDescription"]):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{message_id} was never given up on: {body}")


async def events_of(
    client: httpx.AsyncClient, partner: Partner, message_id: str
) -> list[tuple[object, object]]:
    response = await client.get(f"{BASE}/messages/{message_id}/events?channel=SMS", headers=partner.headers)
    return [(event["deliveryStatus"], event["rawState"]) for event in response.json()["events"]]


async def test_accepted_message_is_handed_over_and_becomes_sent(
    client: httpx.AsyncClient,
    partner: Partner,
    pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder],
    runtime: Runtime,
) -> None:
    dispatcher, provider, _ = pipeline
    message_id = await send(client, partner, "+4915112345600")
    dispatcher.wake()
    body = await wait_for(client, partner, message_id, "SENT")
    assert body["deliveryStatusDescription"] == "Accepted by the carrier"
    assert provider.sent == [message_id]
    async with runtime.database.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(outbox))).scalar() == 0
    assert await events_of(client, partner, message_id) == [("UNKNOWN", "ACCEPTED"), ("SENT", "ESME_ROK")]


async def test_receipts_drive_the_status_and_duplicates_change_nothing(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, _, recorder = pipeline
    message_id = await send(client, partner, "+4915112345601")
    await wait_for(client, partner, message_id, "SENT")
    key = f"id{message_id[-6:]}1".lower()
    await recorder.record([receipt(key, DeliveryStatus.RECEIVED, "ENROUTE", at=1)])
    await recorder.record([receipt(key, DeliveryStatus.DELIVERED, "DELIVRD", at=2)])
    await recorder.record([receipt(key, DeliveryStatus.DELIVERED, "DELIVRD", at=2)])  # duplicate
    await recorder.record([receipt(key, DeliveryStatus.SENT, "LATE", at=3)])  # never undoes DELIVERED
    body = await status_of(client, partner, message_id)
    assert body["deliveryStatus"] == "DELIVERED"
    assert body["errorCode"] is None
    assert recorder.duplicates == 1
    assert [raw for _, raw in await events_of(client, partner, message_id)] == [
        "ACCEPTED", "ESME_ROK", "ENROUTE", "DELIVRD", "LATE",
    ]  # fmt: skip


async def test_a_receipt_before_its_submission_is_kept_and_applied(
    client: httpx.AsyncClient,
    partner: Partner,
    pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder],
    runtime: Runtime,
) -> None:
    dispatcher, _, recorder = pipeline
    # Stop the dispatcher from picking the message up until the early receipt is stored.
    await dispatcher.stop()
    message_id = await send(client, partner, "+4915112345602")
    key = f"id{message_id[-6:]}1".lower()
    await recorder.record([receipt(key, DeliveryStatus.DELIVERED, "DELIVRD", at=5)])
    assert recorder.pending == 1
    assert (await status_of(client, partner, message_id))["deliveryStatus"] == "UNKNOWN"
    restarted = Dispatcher(
        runtime.settings.model_copy(update={"dispatch_poll_seconds": 0.02}),
        recorder._batcher,
        {Channel.SMS: pipeline[1]},
    )
    await restarted.start()
    try:
        await wait_for(client, partner, message_id, "DELIVERED")
    finally:
        await restarted.stop()


async def test_a_receipt_parked_while_another_process_recorded_its_part_is_applied(
    client: httpx.AsyncClient,
    partner: Partner,
    pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder],
    runtime: Runtime,
) -> None:
    """Two processes on PostgreSQL: the receipt's look-up missed the part (not yet committed)
    and the submission's take_pending missed the parked receipt (not yet committed either)."""
    dispatcher, _, recorder = pipeline
    await dispatcher.stop()
    message_id = await send(client, partner, "+4915112345603")
    key = f"id{message_id[-6:]}1".lower()
    await recorder.record([receipt(key, DeliveryStatus.DELIVERED, "DELIVRD", at=5)])
    assert recorder.pending == 1
    async with runtime.database.write() as connection:  # the other process's record, blind to it
        await delivery.record_parts(
            connection, message_id, "scripted", [PartRecord(1, 1, key.upper(), key)], now_ms()
        )
    assert (await status_of(client, partner, message_id))["deliveryStatus"] != "DELIVERED"
    assert await dispatcher.apply_parked_receipts() == 1
    assert (await status_of(client, partner, message_id))["deliveryStatus"] == "DELIVERED"
    assert await dispatcher.apply_parked_receipts() == 0


async def test_failure_then_delivery_is_believed_and_first_failure_stands(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, _, recorder = pipeline
    first = await send(client, partner, "+4915112345603")
    second = await send(client, partner, "+4915112345604")
    await wait_for(client, partner, first, "SENT")
    await wait_for(client, partner, second, "SENT")
    key_1, key_2 = f"id{first[-6:]}1".lower(), f"id{second[-6:]}1".lower()
    await recorder.record([receipt(key_1, DeliveryStatus.ERROR, "UNDELIV", at=1)])
    failed = await status_of(client, partner, first)
    assert (failed["deliveryStatus"], failed["errorCode"]) == ("ERROR", "smpp-err:001")
    await recorder.record([receipt(key_1, DeliveryStatus.DELIVERED, "DELIVRD", at=2)])
    delivered = await status_of(client, partner, first)
    assert (delivered["deliveryStatus"], delivered["errorCode"]) == ("DELIVERED", None)
    await recorder.record([receipt(key_2, DeliveryStatus.EXPIRED, "EXPIRED", at=1)])
    await recorder.record([receipt(key_2, DeliveryStatus.ERROR, "UNDELIV", at=2)])
    assert (await status_of(client, partner, second))["deliveryStatus"] == "EXPIRED"


async def test_read_receipt_keeps_delivered_and_sets_read_at(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, _, recorder = pipeline
    message_id = await send(client, partner, "+4915112345605")
    await wait_for(client, partner, message_id, "SENT")
    key = f"id{message_id[-6:]}1".lower()
    read_at = now_ms() + 1_000
    await recorder.record([receipt(key, DeliveryStatus.DELIVERED, "read", at=read_at, read=True)])
    body = await status_of(client, partner, message_id)
    assert body["deliveryStatus"] == "DELIVERED"
    assert body["readAt"] == format_ms(read_at)


async def test_permanent_rejection_ends_in_error_with_the_provider_code(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    message_id = await send(client, partner, "+4915112345690")
    body = await wait_for(client, partner, message_id, "ERROR")
    assert body["errorCode"] == "smpp:0x0000000B"
    assert body["deliveryStatusDescription"] == "Invalid destination address"


async def test_throttling_is_retried_and_then_sent_once(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, provider, _ = pipeline
    message_id = await send(client, partner, "+4915112345688")
    await wait_for(client, partner, message_id, "SENT")
    assert provider.sent.count(message_id) == 1
    raws = [raw for _, raw in await events_of(client, partner, message_id)]
    assert raws.count("retry:smpp:0x00000058") == 2


async def test_no_answer_ends_unknown_and_is_not_resent(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, provider, _ = pipeline
    message_id = await send(client, partner, "+4915112345697")
    await wait_for(client, partner, message_id, "UNKNOWN")
    await wait_until_given_up(client, partner, message_id)
    assert message_id not in provider.sent


async def test_validity_ending_before_handover_is_expired(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime, fast_settings: Settings
) -> None:
    message_id = await send(client, partner, "+4915112345606")
    async with runtime.database.write() as connection:
        await connection.execute(
            update(messages).where(messages.c.id == message_id).values(expires_at=now_ms() - 1)
        )
    batcher = WriteBatcher(runtime.database)
    batcher.start()
    dispatcher = Dispatcher(fast_settings, batcher, {Channel.SMS: ScriptedProvider()})
    await dispatcher.start()
    try:
        body = await wait_for(client, partner, message_id, "EXPIRED")
    finally:
        await dispatcher.stop()
        await batcher.stop()
    assert body["errorCode"] == "gw:expired-before-handover"


async def test_sent_without_receipt_past_validity_and_grace_becomes_unknown(
    client: httpx.AsyncClient,
    partner: Partner,
    pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder],
    runtime: Runtime,
) -> None:
    dispatcher, _, _ = pipeline
    message_id = await send(client, partner, "+4915112345694", validitySeconds=60)
    await wait_for(client, partner, message_id, "SENT")
    grace = runtime.settings.receipt_grace_seconds * 1000
    assert await dispatcher.sweep_once(now=now_ms() + 59_000 + grace) == 0
    assert await dispatcher.sweep_once(now=now_ms() + 61_000 + grace) == 1
    body = await status_of(client, partner, message_id)
    assert (body["deliveryStatus"], body["deliveryStatusDescription"]) == (
        "UNKNOWN",
        "No delivery receipt from the carrier",
    )
    assert body["errorCode"] is None


async def test_multipart_is_delivered_only_when_every_part_is(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, provider, recorder = pipeline
    provider.parts = 3
    message_id = await send(client, partner, "+4915112345607")
    await wait_for(client, partner, message_id, "SENT")
    keys = [f"id{message_id[-6:]}{n}".lower() for n in (1, 2, 3)]
    await recorder.record([receipt(keys[0], DeliveryStatus.DELIVERED, "DELIVRD", at=1)])
    await recorder.record([receipt(keys[2], DeliveryStatus.DELIVERED, "DELIVRD", at=2)])
    assert (await status_of(client, partner, message_id))["deliveryStatus"] == "SENT"
    await recorder.record([receipt(keys[1], DeliveryStatus.DELIVERED, "DELIVRD", at=3)])
    body = await status_of(client, partner, message_id)
    assert body["deliveryStatus"] == "DELIVERED"
    assert "all 3 parts" in str(body["deliveryStatusDescription"])


async def test_multipart_fails_when_any_part_fails(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, provider, recorder = pipeline
    provider.parts = 2
    message_id = await send(client, partner, "+4915112345608")
    await wait_for(client, partner, message_id, "SENT")
    keys = [f"id{message_id[-6:]}{n}".lower() for n in (1, 2)]
    await recorder.record([receipt(keys[0], DeliveryStatus.DELIVERED, "DELIVRD", at=1)])
    await recorder.record([receipt(keys[1], DeliveryStatus.ERROR, "UNDELIV", at=2)])
    assert (await status_of(client, partner, message_id))["deliveryStatus"] == "ERROR"


def orphan_receipt(
    key: str, to: str, excerpt: str, status: DeliveryStatus = DeliveryStatus.DELIVERED
) -> StatusReport:
    return StatusReport(
        provider="scripted",
        status=status,
        raw_state="DELIVRD",
        description="Delivered to the handset",
        occurred_at=now_ms(),
        dedup_key=f"{key}:DELIVRD",
        provider_key=key,
        details={"destination": to.lstrip("+"), "text_excerpt": excerpt},
    )


async def test_an_unanswered_handover_is_recognised_by_its_receipt(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, _, recorder = pipeline
    message_id = await send(client, partner, "+4915112345697")  # the provider never answers
    await wait_until_given_up(client, partner, message_id)
    await recorder.record([orphan_receipt("smsc-77", "+4915112345697", "hello")])
    body = await status_of(client, partner, message_id)
    assert body["deliveryStatus"] == "DELIVERED"
    assert "RECONCILED" in [raw for _, raw in await events_of(client, partner, message_id)]


async def test_a_receipt_waiting_before_the_handover_is_marked_unanswered_is_adopted(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    dispatcher, _, recorder = pipeline
    await recorder.record([orphan_receipt("smsc-78", "+4915112345697", "hello")])
    message_id = await send(client, partner, "+4915112345697")
    dispatcher.wake()
    await wait_for(client, partner, message_id, "DELIVERED")


async def test_an_ambiguous_match_is_not_guessed(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, _, recorder = pipeline
    first = await send(client, partner, "+4915112345697")
    second = await send(client, partner, "+4915112345697")  # same destination, same text
    for message_id in (first, second):
        await wait_until_given_up(client, partner, message_id)
    await recorder.record([orphan_receipt("smsc-79", "+4915112345697", "hello")])
    assert (await status_of(client, partner, first))["deliveryStatus"] == "UNKNOWN"
    assert (await status_of(client, partner, second))["deliveryStatus"] == "UNKNOWN"


@dataclass
class UnreachableRcs(ScriptedProvider):
    """An RCS provider for which every destination ending 98 is not RCS-capable."""

    name: str = "rcs-scripted"
    channel: Channel = Channel.RCS

    async def send(self, message: OutboundMessage, guard: HandoverGuard) -> Accepted:
        if message.to.endswith("98"):
            raise SendError("permanent", "Not reachable over RCS", code="rbm:404", channel_unavailable=True)
        return await super().send(message, guard)


async def test_rcs_falls_back_to_sms_and_follows_it(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime, fast_settings: Settings
) -> None:
    batcher = WriteBatcher(runtime.database)
    batcher.start()
    sms, rcs = ScriptedProvider(), UnreachableRcs()
    recorder = ReportRecorder(batcher)
    dispatcher = Dispatcher(fast_settings, batcher, {Channel.SMS: sms, Channel.RCS: rcs})
    async with runtime.database.write() as connection:  # every change of both messages is an event
        await CallbackSettingsRepository(connection, runtime.callback_secrets).set_url(
            partner.company_id, "https://partner.example/cb", now_ms()
        )
    await dispatcher.start()
    try:
        response = await client.post(
            f"{BASE}/rcs/messages",
            json={
                "to": "+4915112345698",
                "text": "Your parcel",
                "fallbackSms": {"text": "Your parcel (SMS)", "from": "ACME"},
                "reference": "order-9",
            },
            headers=partner.headers,
        )
        rcs_id = response.json()["customerMessageId"]
        for _ in range(200):
            original = (
                await client.get(f"{BASE}/messages/status/{rcs_id}?channel=RCS", headers=partner.headers)
            ).json()
            if original["deliveryStatus"] == "SENT":
                break
            await asyncio.sleep(0.02)
        assert original["deliveryStatus"] == "SENT", original
        sms_id = str(original["deliveryStatusDescription"]).split()[3].rstrip(":")
        assert sms_id.startswith("msg_")
        assert sms_id != rcs_id
        assert sms.sent == [sms_id]
        assert original["fallbackSms"] == sms_id
        assert "fallbackFor" not in original
        fallback = (
            await client.get(f"{BASE}/messages/status/{sms_id}?channel=SMS", headers=partner.headers)
        ).json()
        assert (fallback["fallbackFor"], fallback["reference"]) == (rcs_id, "order-9")
        assert "fallbackSms" not in fallback
        rcs_events = (
            await client.get(f"{BASE}/messages/{rcs_id}/events?channel=RCS", headers=partner.headers)
        ).json()
        assert "FALLBACK_SMS" in [event["rawState"] for event in rcs_events["events"]]
        sms_events = (
            await client.get(f"{BASE}/messages/{sms_id}/events?channel=SMS", headers=partner.headers)
        ).json()
        assert [event["rawState"] for event in sms_events["events"]][:2] == ["ACCEPTED", "FALLBACK_FOR"]
        await recorder.record(
            [receipt(f"id{sms_id[-6:]}1".lower(), DeliveryStatus.DELIVERED, "DELIVRD", at=9)]
        )
        final = (
            await client.get(f"{BASE}/messages/status/{rcs_id}?channel=RCS", headers=partner.headers)
        ).json()
        assert final["deliveryStatus"] == "DELIVERED"
        assert final["deliveryStatusDescription"] == f"Sent as SMS {sms_id}: carrier says DELIVRD"
        # A callback carries the status exactly as the API answers it, links included.
        final_sms = (
            await client.get(f"{BASE}/messages/status/{sms_id}?channel=SMS", headers=partner.headers)
        ).json()
        for message_id, answer in ((rcs_id, final), (sms_id, final_sms)):
            async with runtime.database.read() as connection:
                bodies = (
                    await connection.execute(
                        select(callback_events.c.body)
                        .where(callback_events.c.message_id == message_id)
                        .order_by(callback_events.c.sequence)
                    )
                ).scalars()
                last = json.loads(list(bodies)[-1])
            event_fields = {"eventId", "occurredAt", "sequence"}
            assert {key: value for key, value in last.items() if key not in event_fields} == answer
    finally:
        await dispatcher.stop()
        await batcher.stop()


def revocation(rbm_key: str, event_id: str) -> StatusReport:
    return StatusReport(
        provider="rcs-scripted",
        status=DeliveryStatus.EXPIRED,
        raw_state="TTL_EXPIRATION_REVOKED",
        description="RBM withdrew it",
        occurred_at=now_ms(),
        dedup_key=f"rcs:{rbm_key}:TTL_EXPIRATION_REVOKED:{event_id}",
        provider_key=rbm_key,
        error_code="rbm:TTL_EXPIRATION_REVOKED",
        is_final=True,
        channel_unavailable=True,
    )


@pytest.mark.parametrize("asked", [True, False])
async def test_a_revocation_sends_the_fallback_sms_once_when_the_send_asked_for_it(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime, fast_settings: Settings, asked: bool
) -> None:
    batcher = WriteBatcher(runtime.database)
    batcher.start()
    sms, rcs = ScriptedProvider(), ScriptedProvider(name="rcs-scripted", channel=Channel.RCS)
    recorder = ReportRecorder(batcher)
    dispatcher = Dispatcher(fast_settings, batcher, {Channel.SMS: sms, Channel.RCS: rcs})
    await dispatcher.start()
    try:
        fallback = {"text": "Your code (SMS)", **({"afterSeconds": 60} if asked else {})}
        response = await client.post(
            f"{BASE}/rcs/messages",
            json={"to": "+4915112345801", "text": "Your code", "fallbackSms": fallback},
            headers=partner.headers,
        )
        rcs_id = response.json()["customerMessageId"]
        for _ in range(200):
            if rcs.sent:
                break
            await asyncio.sleep(0.02)
        rbm_key = f"id{rcs_id[-6:]}1".lower()
        # The same event twice in one batch, then another delivery of the event under a new id.
        await recorder.record([revocation(rbm_key, "e1"), revocation(rbm_key, "e1")])
        await recorder.record([revocation(rbm_key, "e2")])
        for _ in range(200):
            if sms.sent or not asked:
                break
            await asyncio.sleep(0.02)
        status = (
            await client.get(f"{BASE}/messages/status/{rcs_id}?channel=RCS", headers=partner.headers)
        ).json()
        timeline = (
            await client.get(f"{BASE}/messages/{rcs_id}/events?channel=RCS", headers=partner.headers)
        ).json()["events"]
        if not asked:
            assert (status["deliveryStatus"], status["errorCode"]) == (
                "EXPIRED",
                "rbm:TTL_EXPIRATION_REVOKED",
            )
            assert "fallbackSms" not in status
            assert sms.sent == []
            return
        assert len(sms.sent) == 1
        assert status["fallbackSms"] == sms.sent[0]
        assert status["deliveryStatus"] == "SENT"
        assert [event["rawState"] for event in timeline].count("FALLBACK_SMS") == 1
        revoked = [event for event in timeline if event["rawState"] == "TTL_EXPIRATION_REVOKED"]
        # The first is the fallback's cue; the second came after the fallback was sent: neither
        # expires the message (its SMS took over) nor sends another SMS.
        assert len(revoked) == 2
        for event in revoked:
            assert event["deliveryStatus"] is None
            assert event["description"] == f"RBM withdrew it; sent as SMS {sms.sent[0]} instead"
    finally:
        await dispatcher.stop()
        await batcher.stop()


# Set-based writes: a batch's receipts and submissions are applied with a few statements for all
# of them (see delivery.apply_provider_reports); the outcome must be that of applying them one by one.


async def test_receipts_for_one_message_in_one_batch_apply_in_order(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, _, recorder = pipeline
    message_id = await send(client, partner, "+4915112345610")
    await wait_for(client, partner, message_id, "SENT")
    key = f"id{message_id[-6:]}1".lower()
    await recorder.record(
        [
            receipt(key, DeliveryStatus.RECEIVED, "ENROUTE", at=1),
            receipt(key, DeliveryStatus.DELIVERED, "DELIVRD", at=2),
            receipt(key, DeliveryStatus.DELIVERED, "DELIVRD", at=2),  # a duplicate within the batch
            receipt(key, DeliveryStatus.RECEIVED, "ENROUTE", at=3),  # never undoes DELIVERED
        ]
    )
    assert (recorder.applied, recorder.duplicates) == (3, 1)
    body = await status_of(client, partner, message_id)
    assert body["deliveryStatus"] == "DELIVERED"
    assert [raw for _, raw in await events_of(client, partner, message_id)] == [
        "ACCEPTED", "ESME_ROK", "ENROUTE", "DELIVRD", "ENROUTE",
    ]  # fmt: skip


async def test_receipts_of_several_messages_and_parts_in_one_batch(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, provider, recorder = pipeline
    provider.parts = 2
    delivered = await send(client, partner, "+4915112345611")
    half = await send(client, partner, "+4915112345612")
    failed = await send(client, partner, "+4915112345613")
    for message_id in (delivered, half, failed):
        await wait_for(client, partner, message_id, "SENT")

    def key(message_id: str, part: int) -> str:
        return f"id{message_id[-6:]}{part}".lower()

    await asyncio.gather(
        recorder.record([receipt(key(delivered, 1), DeliveryStatus.DELIVERED, "DELIVRD", at=1)]),
        recorder.record([receipt(key(half, 2), DeliveryStatus.DELIVERED, "DELIVRD", at=1)]),
        recorder.record([receipt(key(failed, 1), DeliveryStatus.DELIVERED, "DELIVRD", at=1)]),
        recorder.record(
            [
                receipt(key(delivered, 2), DeliveryStatus.DELIVERED, "DELIVRD", at=2),
                receipt(key(failed, 2), DeliveryStatus.ERROR, "UNDELIV", at=2),
            ]
        ),
    )
    assert (await status_of(client, partner, delivered))["deliveryStatus"] == "DELIVERED"
    assert (await status_of(client, partner, half))["deliveryStatus"] == "SENT"
    assert (await status_of(client, partner, failed))["deliveryStatus"] == "ERROR"


@pytest.mark.parametrize("receipt_first", [True, False], ids=["receipt-first", "submission-first"])
async def test_a_receipt_in_the_same_batch_as_its_submission_is_applied(
    client: httpx.AsyncClient,
    partner: Partner,
    pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder],
    runtime: Runtime,
    receipt_first: bool,
) -> None:
    dispatcher, _, recorder = pipeline
    await dispatcher.stop()  # this test plays the dispatcher
    message_id = await send(client, partner, "+4915112345614")
    lease_ms = 60_000
    async with runtime.database.write() as connection:
        (item,) = await delivery.claim_due(connection, now_ms(), 10, lease_ms, [Channel.SMS])
    key = f"id{message_id[-6:]}1".lower()
    accepted = Accepted(
        "scripted", (SubmittedPart(1, 1, key.upper(), key),), "Accepted by the carrier", "ESME_ROK"
    )
    record = recorder._batcher.submit_bulk(RECORD_ACCEPTED, (item, accepted))
    early = recorder.record([receipt(key, DeliveryStatus.DELIVERED, "DELIVRD", at=5)])
    await asyncio.gather(*((early, record) if receipt_first else (record, early)))
    assert (await status_of(client, partner, message_id))["deliveryStatus"] == "DELIVERED"
    async with runtime.database.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(outbox))).scalar() == 0
        assert (await connection.execute(select(func.count()).select_from(pending_reports))).scalar() == 0


async def test_a_failing_receipt_fails_alone_and_the_rest_of_its_batch_is_applied(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    _, _, recorder = pipeline
    message_id = await send(client, partner, "+4915112345615")
    await wait_for(client, partner, message_id, "SENT")
    key = f"id{message_id[-6:]}1".lower()
    # A receipt for no known submission is parked as JSON; this one cannot be written as JSON.
    broken = StatusReport(
        provider="scripted",
        status=DeliveryStatus.DELIVERED,
        raw_state="DELIVRD",
        description="Delivered",
        occurred_at=now_ms(),
        dedup_key="unknown:DELIVRD",
        provider_key="unknown-id",
        details={"destination": object()},
    )
    outcomes = await asyncio.gather(
        recorder.record([receipt(key, DeliveryStatus.RECEIVED, "ENROUTE", at=1)]),
        recorder.record([broken]),
        recorder.record([receipt(key, DeliveryStatus.DELIVERED, "DELIVRD", at=2)]),
        return_exceptions=True,
    )
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], TypeError)
    assert (await status_of(client, partner, message_id))["deliveryStatus"] == "DELIVERED"
    assert [raw for _, raw in await events_of(client, partner, message_id)] == [
        "ACCEPTED", "ESME_ROK", "ENROUTE", "DELIVRD",
    ]  # fmt: skip


async def test_many_messages_are_handed_over_and_recorded_once_each(
    client: httpx.AsyncClient, partner: Partner, pipeline: tuple[Dispatcher, ScriptedProvider, ReportRecorder]
) -> None:
    dispatcher, provider, recorder = pipeline
    message_ids = await asyncio.gather(*(send(client, partner, f"+49151123456{n:02d}") for n in range(40)))
    dispatcher.wake()
    for message_id in message_ids:
        await wait_for(client, partner, message_id, "SENT")
    assert sorted(provider.sent) == sorted(message_ids)
    await asyncio.gather(
        *(
            recorder.record(
                [receipt(f"id{message_id[-6:]}1".lower(), DeliveryStatus.DELIVERED, "DELIVRD", at=1)]
            )
            for message_id in message_ids
        )
    )
    for message_id in message_ids:
        assert (await status_of(client, partner, message_id))["deliveryStatus"] == "DELIVERED"
        assert await events_of(client, partner, message_id) == [
            ("UNKNOWN", "ACCEPTED"), ("SENT", "ESME_ROK"), ("DELIVERED", "DELIVRD"),
        ]  # fmt: skip


async def test_a_queue_message_received_twice_in_one_batch_is_handed_over_once(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime, fast_settings: Settings
) -> None:
    """Queue workers claim the items of the messages they receive together, with one statement."""
    message_ids = [await send(client, partner, f"+49151123456{n}") for n in (20, 21)]
    async with runtime.database.write() as connection:
        published = await delivery.take_for_publishing(connection, now_ms(), 10, 60_000)
    works = [
        WorkItem(outbox_id, message_id, channel, attempts)
        for outbox_id, message_id, channel, attempts in published
    ]
    batcher = WriteBatcher(runtime.database)
    batcher.start()
    provider = ScriptedProvider()
    dispatcher = Dispatcher(fast_settings, batcher, {Channel.SMS: provider})  # not started: we are its queue
    try:
        await asyncio.gather(*(dispatcher.consumer.handle(work) for work in [*works, works[0]]))
    finally:
        await batcher.stop()
    assert sorted(provider.sent) == sorted(message_ids)  # the first twice, yet sent once
    for message_id in message_ids:
        assert (await status_of(client, partner, message_id))["deliveryStatus"] == "SENT"


@dataclass
class IdempotentProvider(ScriptedProvider):
    """A provider whose resend cannot deliver twice (as RBM's deterministic messageId): the first
    hand-over to a destination ending 97 gets no answer, the next is accepted."""

    resend_is_safe: bool = True

    async def send(self, message: OutboundMessage, guard: HandoverGuard) -> Accepted:
        if message.to.endswith("97") and message.message_id in self.attempts:
            self.attempts[message.message_id] += 1
            await guard.before_write(message.message_id)
            self.sent.append(message.message_id)
            part = SubmittedPart(1, 1, f"ID{message.message_id[-6:]}1", f"id{message.message_id[-6:]}1")
            return Accepted(self.name, (part,), "Accepted by the provider", "ACCEPTED")
        return await super().send(message, guard)


async def test_an_unanswered_handover_is_resent_when_the_provider_makes_resends_safe(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime, fast_settings: Settings
) -> None:
    batcher = WriteBatcher(runtime.database)
    batcher.start()
    provider = IdempotentProvider()
    dispatcher = Dispatcher(fast_settings, batcher, {Channel.SMS: provider})
    await dispatcher.start()
    try:
        message_id = await send(client, partner, "+4915112345697")
        await wait_for(client, partner, message_id, "SENT")
        assert provider.attempts[message_id] == 2
        assert provider.sent == [message_id]
    finally:
        await dispatcher.stop()
        await batcher.stop()


@pytest.mark.parametrize(
    ("channel", "no_receipt", "unanswered"),
    [
        (Channel.SMS, "No delivery receipt from the carrier", "The carrier did not answer"),
        (Channel.WHATSAPP, "No delivery report from WhatsApp", "WhatsApp did not answer"),
        (
            Channel.RCS,
            "No delivery report from RCS Business Messaging",
            "RCS Business Messaging did not answer",
        ),
    ],
)
def test_descriptions_name_who_the_channel_hands_over_to(
    channel: Channel, no_receipt: str, unanswered: str
) -> None:
    assert no_receipt_description(channel) == no_receipt
    assert unanswered_description(channel).startswith(unanswered)
    assert channel is Channel.SMS or "carrier" not in unanswered_description(channel)
