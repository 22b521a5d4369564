"""Inbound messages through the SDK against a served gateway: users write in through its
simulators (`partner-gateway simulate mo` for SMS, the WhatsApp and RBM simulators' own
`POST /simulator/inbound`), the messages are read back through the lazy iterator across pages
and with each filter, their `inbound` callbacks verify as `InboundEvent`s, and a STOP puts the
user on the opt-out list (a send to them then ends ERROR gw:opted-out), START takes them off."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import parse_qs

import httpx
import pytest

from partner_gateway.callbacks.listener import CallbackReceiver
from partner_gateway.embedded_server import EmbeddedServer
from partner_gateway_sdk import (
    AsyncClient,
    BadRequestError,
    CallbackEvent,
    Client,
    InboundEvent,
    InboundMessage,
    MessageStatus,
    OptOut,
    verify_callback,
)
from sdk_support import SIMULATOR_PORTS, Company
from support import cli

USER = "+4915112345610"
OTHER_USER = "+4915112345611"
SHORT_CODE = "12345"
WHATSAPP_NUMBER = "+15550001234"  # the WhatsApp simulator's display_phone_number
RBM_AGENT = "sim-agent"  # the RBM simulator's agent id

T = TypeVar("T")


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def sync(self, request: httpx.Request) -> None:
        self.requests.append(request)

    async def hook(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def cursors(self) -> list[list[str] | None]:
        return [parse_qs(request.url.query.decode()).get("cursor") for request in self.requests]


async def wait_for(check: Callable[[], Awaitable[T | None]], what: str, seconds: float = 60) -> T:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.2)


async def write_in(env: dict[str, str], channel: str, sender: str, text: str) -> str | None:
    """A user writes in through the served gateway's simulator: the operator's command for SMS
    (in a thread, so the callback receiver on this loop keeps answering), the simulator's own
    HTTP API for WhatsApp and RCS; the provider's id when there is one."""
    port = SIMULATOR_PORTS[channel]
    if channel == "SMS":
        await asyncio.to_thread(
            cli,
            env,
            "simulate",
            "mo",
            "--port",
            str(port),
            "--from",
            sender,
            "--to",
            SHORT_CODE,
            "--text",
            text,
        )
        return None
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"http://127.0.0.1:{port}/simulator/inbound", json={"from": sender, "to": "-", "text": text}
        )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def test_inbound_is_read_back_across_pages_pushed_as_inbound_events_and_stop_opts_out(
    company: Company,
) -> None:
    env = company.gateway.env
    for number, channel in ((SHORT_CODE, "SMS"), (WHATSAPP_NUMBER, "WHATSAPP"), (RBM_AGENT, "RCS")):
        cli(env, "company", "numbers", "add", company.company_id, number, "--channel", channel)
    receiver = CallbackReceiver()
    recorder = Recorder()
    async with (
        EmbeddedServer(receiver, name="callback receiver", stop_timeout=1.0) as port,
        httpx.AsyncClient(event_hooks={"request": [recorder.hook]}) as http,
        AsyncClient(company.api_key, base_url=company.url, http_client=http) as client,
    ):
        secret = (await client.set_callback_settings(f"http://127.0.0.1:{port}/callbacks")).secret
        assert secret

        await write_in(env, "SMS", USER, "Hello by SMS")
        await write_in(env, "SMS", OTHER_USER, "Yes, 10:30 works")
        wamids = [await write_in(env, "WHATSAPP", USER, f"hi on WhatsApp {index}") for index in range(3)]
        rbm_id = await write_in(env, "RCS", USER, "hi on RCS")

        async def all_six() -> list[InboundMessage] | None:
            items = [item async for item in client.inbound()]
            return items if len(items) == 6 else None

        everything = await wait_for(all_six, "six inbound messages listed")
        assert len({item.id for item in everything}) == 6
        assert [item.received_at for item in everything] == sorted(
            (item.received_at for item in everything), reverse=True
        )  # newest first
        by_text = {item.text: item for item in everything}
        sms = by_text["Hello by SMS"]
        assert (sms.channel, sms.sender, sms.to, sms.type, sms.parts, sms.provider_message_id) == (
            "SMS", USER, SHORT_CODE, "text", 1, None,
        )  # fmt: skip
        assert sms.id.startswith("in_")
        assert sms.raw["from"] == USER
        assert by_text["hi on WhatsApp 0"].to == WHATSAPP_NUMBER
        assert {by_text[f"hi on WhatsApp {index}"].provider_message_id for index in range(3)} == set(wamids)
        assert (by_text["hi on RCS"].to, by_text["hi on RCS"].provider_message_id) == (RBM_AGENT, rbm_id)

        # Across pages: 4 + 2, the second asked with the first's cursor.
        recorder.requests.clear()
        assert [item async for item in client.inbound(page_size=4)] == everything
        assert len(recorder.requests) == 2
        assert recorder.cursors()[0] is None
        assert recorder.cursors()[1]
        pages = [page async for page in client.inbound_pages(page_size=4)]
        assert [len(page.items) for page in pages] == [4, 2]
        resumed = [page async for page in client.inbound_pages(page_size=4, cursor=pages[0].next_cursor)]
        assert resumed == pages[1:]

        # Every filter.
        whatsapp = [item async for item in client.inbound(channel="WHATSAPP", page_size=2)]
        # (the simulator posts its webhooks as it likes: their order of arrival is not asserted)
        assert {item.text for item in whatsapp} == {f"hi on WhatsApp {index}" for index in range(3)}
        assert len(whatsapp) == 3
        assert [item.text async for item in client.inbound(sender=OTHER_USER)] == ["Yes, 10:30 works"]
        assert {item.text async for item in client.inbound(to=SHORT_CODE)} == {
            "Hello by SMS",
            "Yes, 10:30 works",
        }
        assert [item async for item in client.inbound(channel="SMS", sender=USER)] == [sms]
        now = datetime.now(UTC)
        window = [
            item
            async for item in client.inbound(
                start_date=now - timedelta(hours=1), end_date=now + timedelta(minutes=1)
            )
        ]
        assert window == everything
        assert [
            item async for item in client.inbound(start_date=sms.received_at + timedelta(milliseconds=1))
        ] == [item for item in everything if item.received_at > sms.received_at]
        assert [item async for item in client.inbound(end_date=now - timedelta(hours=1))] == []
        with pytest.raises(BadRequestError) as refused:
            await anext(client.inbound(channel="FAX", start_date=now, end_date=now - timedelta(days=1)))
        assert {error.field for error in refused.value.errors} == {"channel", "startDate"}

        # The same through the sync client, lazily.
        sync_recorder = Recorder()
        sync_http = httpx.Client(event_hooks={"request": [sync_recorder.sync]})
        with sync_http, Client(company.api_key, base_url=company.url, http_client=sync_http) as sync_client:
            listed = await asyncio.to_thread(lambda: list(sync_client.inbound(page_size=5)))
            assert listed == everything
            sync_recorder.requests.clear()
            first = await asyncio.to_thread(
                lambda: list(itertools.islice(sync_client.inbound(page_size=2), 2))
            )
            assert first == everything[:2]
            assert len(sync_recorder.requests) == 1  # no page asked for before it is reached

        # Each arrived as a signed `inbound` callback event.
        async def six_events() -> list[InboundEvent] | None:
            events = [verify_callback(secret, item.headers, item.body) for item in receiver.received]
            inbound = {event.event_id: event for event in events if isinstance(event, InboundEvent)}
            return list(inbound.values()) if len(inbound) == 6 else None

        events = await wait_for(six_events, "six inbound callback events")
        assert not any(
            isinstance(verify_callback(secret, item.headers, item.body), CallbackEvent)
            for item in receiver.received
        )
        listed_by_id = {item.id: item for item in everything}
        assert set(listed_by_id) == {event.id for event in events}
        for event in events:
            item = listed_by_id[event.id]
            assert (event.text, event.sender, event.to, event.channel, event.received_at) == (
                item.text, item.sender, item.to, item.channel, item.received_at,
            )  # fmt: skip
            assert event.event_id.startswith("evt_")
            assert event.sequence == 1
            assert event.occurred_at is not None

        # A STOP on WhatsApp opts the user out of WhatsApp (not SMS); START opts them in again.
        await write_in(env, "WHATSAPP", USER, "STOP")

        async def opted_out() -> OptOut | None:
            return await client.get_opt_out("WHATSAPP", USER)

        entry = await wait_for(opted_out, "the STOP's opt-out")
        assert (entry.channel, entry.number, entry.source) == ("WHATSAPP", USER, "keyword")
        assert [item async for item in client.opt_outs()] == [entry]
        assert await client.get_opt_out("SMS", USER) is None
        sent = await client.send_whatsapp(USER, text="an offer")

        async def final() -> MessageStatus | None:
            status = await client.status(sent.customer_message_id, "WHATSAPP")
            return status if status.is_final else None

        status = await wait_for(final, "the opted-out send's final status")
        assert (status.delivery_status, status.error_code) == ("ERROR", "gw:opted-out")
        assert (await anext(client.inbound(channel="WHATSAPP"))).text == "STOP"  # stored and listed too

        await write_in(env, "WHATSAPP", USER, "START")

        async def opted_in() -> bool | None:
            return True if await client.get_opt_out("WHATSAPP", USER) is None else None

        await wait_for(opted_in, "the START's opt-in")
        assert [item async for item in client.opt_outs()] == []
