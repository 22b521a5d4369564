"""The SDK's sends and look-ups against a served gateway: each channel, sync and async, the
timeline, and the problem documents as typed errors."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from partner_gateway_sdk import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ClientError,
    IdempotencyKeyReusedError,
    MessageStatus,
    NotFoundError,
    PartnerGatewayError,
)
from sdk_support import Company

DELIVERED_NUMBER = "+4915112345600"  # the simulators deliver a number ending 00 to 89 (SPEC §6)


def wait_final(client: Client, message_id: str, channel: str) -> MessageStatus:
    deadline = time.monotonic() + 60
    while True:
        status = client.status(message_id, channel)
        if status.is_final or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_a_send_on_each_channel_is_accepted_delivered_and_has_a_timeline(company: Company) -> None:
    with Client(company.api_key, base_url=company.url) as client:
        sms = client.send_sms(DELIVERED_NUMBER, "Hello from the SDK €", sender="Acme", reference="sdk-1")
        whatsapp = client.send_whatsapp(DELIVERED_NUMBER, text="Hello on WhatsApp")
        template = client.send_whatsapp(
            DELIVERED_NUMBER, template={"name": "order_ready", "language": "en_US", "parameters": ["1234"]}
        )
        rcs = client.send_rcs(
            DELIVERED_NUMBER,
            text="Your order is ready",
            suggestions=[{"type": "reply", "text": "Thanks", "postbackData": "thanks"}],
            fallback_sms={"text": "Your order is ready", "from": "Acme"},
        )
        card = client.send_rcs(
            DELIVERED_NUMBER,
            rich_card={"title": "Order 1234", "description": "Ready for pick-up", "mediaHeight": "SHORT"},
        )
        sent = {sms: "SMS", whatsapp: "WHATSAPP", template: "WHATSAPP", rcs: "RCS", card: "RCS"}
        for message, channel in sent.items():
            assert (message.channel, message.delivery_status) == (channel, "UNKNOWN")
            assert message.location is not None
            assert message.location.endswith(
                f"/messages/status/{message.customer_message_id}?channel={channel}"
            )
            assert not message.replayed
            assert str(uuid.UUID(message.idempotency_key)) == message.idempotency_key
            assert message.request_id
        assert (sms.reference, sms.encoding, sms.segments) == ("sdk-1", "GSM7", 1)
        assert len({message.idempotency_key for message in sent}) == len(sent)  # one key per call

        for message, channel in sent.items():
            final = wait_final(client, message.customer_message_id, channel)
            assert final.delivery_status == "DELIVERED", final
            assert final.created_at == message.created_at
            assert final.updated_at >= final.created_at
            timeline = client.events(message.customer_message_id, channel)
            assert timeline.customer_message_id == message.customer_message_id
            assert [event.delivery_status for event in timeline.events][-1] == "DELIVERED"
            assert all(event.occurred_at >= final.created_at for event in timeline.events)


async def test_the_async_client_sends_on_every_channel_at_once_and_reads_each_back(company: Company) -> None:
    async with AsyncClient(company.api_key, base_url=company.url) as client:
        sms, whatsapp, rcs = await asyncio.gather(
            client.send_sms(DELIVERED_NUMBER, "async SMS"),
            client.send_whatsapp(DELIVERED_NUMBER, text="async WhatsApp"),
            client.send_rcs(DELIVERED_NUMBER, text="async RCS"),
        )
        for message in (sms, whatsapp, rcs):
            status = await client.status(message.customer_message_id, message.channel)
            assert status.customer_message_id == message.customer_message_id
            assert status.to == DELIVERED_NUMBER
            timeline = await client.events(message.customer_message_id, message.channel)
            assert timeline.events  # at least the acceptance


def test_a_key_given_by_the_caller_replays_the_first_answer(company: Company) -> None:
    with Client(company.api_key, base_url=company.url) as client:
        first = client.send_sms(DELIVERED_NUMBER, "once", idempotency_key="order-77")
        again = client.send_sms(DELIVERED_NUMBER, "once", idempotency_key="order-77")
        assert (again.customer_message_id, again.created_at) == (first.customer_message_id, first.created_at)
        assert (first.replayed, again.replayed) == (False, True)
        with pytest.raises(IdempotencyKeyReusedError) as reused:
            client.send_sms(DELIVERED_NUMBER, "another body", idempotency_key="order-77")
        assert reused.value.status == 422
        assert reused.value.problem == "idempotency-key-reused"


def test_invalid_input_is_a_typed_error_naming_every_field(company: Company) -> None:
    with Client(company.api_key, base_url=company.url) as client, pytest.raises(BadRequestError) as raised:
        client.send_sms("0151 1234567", "", reference="x" * 65)
    error = raised.value
    assert isinstance(error, ClientError)
    assert isinstance(error, PartnerGatewayError)
    assert error.status == 400
    assert error.type == "https://partner-gateway.dev/problems/invalid-request"
    assert error.problem == "invalid-request"
    assert error.title
    assert error.detail
    assert error.request_id
    assert {field.field for field in error.errors} >= {"to", "text", "reference"}
    assert all(field.message for field in error.errors)
    assert error.request_id in str(error)
    assert "to:" in str(error)


def test_not_found_and_a_bad_key_are_their_own_errors(company: Company) -> None:
    with Client(company.api_key, base_url=company.url) as client:
        sent = client.send_sms(DELIVERED_NUMBER, "on SMS")
        with pytest.raises(NotFoundError) as missing:
            client.status(sent.customer_message_id, "WHATSAPP")  # another channel reads as none
        assert missing.value.status == 404
        with pytest.raises(BadRequestError) as bad_channel:
            client.status(sent.customer_message_id, "FAX")
        assert [field.field for field in bad_channel.value.errors] == ["channel"]
    with (
        Client("pgw_not_a_key", base_url=company.url) as stranger,
        pytest.raises(AuthenticationError) as refused,
    ):
        stranger.status(sent.customer_message_id, "SMS")
    assert refused.value.status == 401
    assert refused.value.headers["www-authenticate"].startswith("Bearer")
