"""Callbacks through the SDK: settings set and read, a real callback from a served gateway
received and verified with `verify_callback`, before and after a secret's rotation."""

from __future__ import annotations

import asyncio
import time

import pytest

from partner_gateway.callbacks.listener import CallbackReceiver, Received
from partner_gateway.embedded_server import EmbeddedServer
from partner_gateway_sdk import AsyncClient, CallbackEvent, InvalidSignatureError, verify_callback
from sdk_support import Company

NUMBER = "+4915112345604"


async def delivered_events(receiver: CallbackReceiver, message_id: str) -> list[Received]:
    """The callbacks of `message_id` once its DELIVERED one has come."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = [item for item in receiver.received if item.json()["customerMessageId"] == message_id]
        if any(item.json()["deliveryStatus"] == "DELIVERED" for item in mine):
            return mine
        await asyncio.sleep(0.1)
    raise AssertionError(f"no DELIVERED callback for {message_id} within 60 s: {receiver.received}")


async def test_a_real_callback_is_verified_with_the_secret_and_after_rotation_with_either(
    company: Company,
) -> None:
    receiver = CallbackReceiver()  # keeps what came; the checking here is the SDK's
    async with (
        EmbeddedServer(receiver, name="callback receiver", stop_timeout=1.0) as port,
        AsyncClient(company.api_key, base_url=company.url) as client,
    ):
        url = f"http://127.0.0.1:{port}/callbacks"
        before = await client.get_callback_settings()
        assert (before.url, before.secret_set, before.secret) == (None, False, None)
        made = await client.set_callback_settings(url)
        assert made.url == url
        assert made.secret_set
        assert made.secret
        assert made.secret not in repr(made)  # kept out of logs that print the settings
        shown = await client.get_callback_settings()
        assert (shown.url, shown.secret_set, shown.secret) == (url, True, None)

        sent = await client.send_sms(NUMBER, "call me back")
        received = await delivered_events(receiver, sent.customer_message_id)
        events = [verify_callback(made.secret, item.headers, item.body) for item in received]
        assert all(isinstance(event, CallbackEvent) for event in events)
        assert {event.customer_message_id for event in events} == {sent.customer_message_id}
        assert sorted(event.sequence for event in events) == list(range(1, len(events) + 1))
        assert max(events, key=lambda event: event.sequence).delivery_status == "DELIVERED"
        assert all(event.event_id.startswith("evt_") for event in events)
        with pytest.raises(InvalidSignatureError, match="no signature matches"):
            verify_callback("whsec_not_ours", received[0].headers, received[0].body)
        with pytest.raises(InvalidSignatureError):
            verify_callback(made.secret, received[0].headers, received[0].body + b" ")
        signed_at = int(received[0].signature.split(",")[0].removeprefix("t="))
        with pytest.raises(InvalidSignatureError, match="old"):
            verify_callback(made.secret, received[0].headers, received[0].body, now=signed_at + 301)

        # The gateway records an attempt once the receiver has answered it: wait for the record.
        deadline = time.monotonic() + 30
        while True:
            deliveries = await client.callbacks(sent.customer_message_id, "SMS")
            if all(delivery.state == "DELIVERED" for delivery in deliveries) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert {delivery.event_id for delivery in deliveries} == {event.event_id for event in events}
        assert all(delivery.state == "DELIVERED" for delivery in deliveries)
        assert all(delivery.attempts[-1].response_status == 204 for delivery in deliveries)

        rotated = await client.set_callback_settings(url, rotate_secret=True)
        assert rotated.secret
        assert rotated.secret != made.secret
        # Every callback after the rotation carries both signatures (the sender reads the secrets
        # again when a claim shows a rotation): each verifies with either secret alone.
        both = [made.secret, rotated.secret]
        deadline = time.monotonic() + 60
        while True:
            again = await client.send_sms(NUMBER, "after the rotation")
            after = await delivered_events(receiver, again.customer_message_id)
            for item in after:
                assert (
                    verify_callback(both, item.headers, item.body).customer_message_id
                    == again.customer_message_id
                )
                assert verify_callback(made.secret, item.headers, item.body).sequence >= 1
                assert verify_callback(rotated.secret, item.headers, item.body).sequence >= 1
                assert item.signature.count("v1=") == 2
            doubly = [item for item in after if item.signature.count("v1=") == 2]
            if doubly or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert doubly, "no callback signed with both secrets within 60 s of the rotation"
        since = min(event.occurred_at for event in events if event.occurred_at is not None)
        assert await client.replay_callbacks(since) >= len(events) + len(after)  # every one of them again
        for item in doubly:
            for secrets in (rotated.secret, ["whsec_x", rotated.secret], list(reversed(both))):
                assert (
                    verify_callback(secrets, item.headers, item.body).customer_message_id
                    == again.customer_message_id
                )
