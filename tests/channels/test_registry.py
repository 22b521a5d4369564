"""The channel registry: a new channel is one folder's entry, and nothing else changes.

The FAX channel below is that folder, written as a test: its request, its rule, a provider that
reports delivery as a real one's receipt would, and its entry. The gateway serves it end to end
(the API's send route and its OpenAPI operation, the store, the dispatcher, the status look-ups,
the timeline, the history) from the registry alone: no module of the package names it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

import httpx
import msgspec
import pytest

from partner_gateway.api.app import create_app
from partner_gateway.channels.base import (
    Accepted,
    AlwaysAccepting,
    HandoverGuard,
    OutboundMessage,
    Provider,
    ReportSink,
    StatusReport,
    SubmittedPart,
    WebhookRoute,
)
from partner_gateway.channels.entry import ChannelEntry, ProviderContext, SendFields, SendRequest
from partner_gateway.channels.registry import CHANNELS
from partner_gateway.config import Settings
from partner_gateway.domain import sending
from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.process import Pipeline, start_pipeline
from partner_gateway.runtime import Runtime
from support import BASE, make_partner

FAX = Channel("FAX")


class FaxSendRequest(SendRequest):
    pages: Annotated[int, msgspec.Meta(description="How many pages the fax has")]


def check_fax(request: FaxSendRequest, problems: sending.Problems) -> SendFields:
    if not 1 <= request.pages <= 50:
        problems.append(("pages", "must be 1 to 50"))
    return SendFields(segments=request.pages)


class FaxProvider(AlwaysAccepting):
    """Accepts every fax, and reports it delivered a moment later, as a carrier's receipt would."""

    name = "fax-line"
    channel = FAX

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self._sink: ReportSink | None = None
        self._receipts: set[asyncio.Task[None]] = set()

    async def start(self, sink: ReportSink) -> None:
        self._sink = sink

    async def stop(self) -> None:
        for task in self._receipts:
            task.cancel()
        await asyncio.gather(*self._receipts, return_exceptions=True)

    async def send(self, message: OutboundMessage, guard: HandoverGuard) -> Accepted:
        await guard.before_write(message.message_id)
        self.sent.append(message)
        key = f"fax-{len(self.sent)}"
        task = asyncio.create_task(self._receipt(key))
        self._receipts.add(task)
        task.add_done_callback(self._receipts.discard)
        return Accepted(self.name, (SubmittedPart(1, 1, key, key),), raw_state="QUEUED")

    async def _receipt(self, key: str) -> None:
        await asyncio.sleep(0.05)
        assert self._sink is not None
        report = StatusReport(
            provider=self.name,
            status=DeliveryStatus.DELIVERED,
            raw_state="CONFIRMED",
            description="All pages received",
            occurred_at=now_ms(),
            dedup_key=f"{key}:confirmed",
            provider_key=key,
            is_final=True,
        )
        await self._sink.record([report])

    def webhook_routes(self) -> Sequence[WebhookRoute]:
        return ()


def fax_channel(provider: FaxProvider) -> ChannelEntry[FaxSendRequest]:
    def build_provider(_context: ProviderContext) -> Provider:
        return provider

    return ChannelEntry(
        channel=FAX,
        path="fax",
        noun="a fax",
        operation_id="sendFax",
        request_type=FaxSendRequest,
        check=check_fax,
        validity=sending.ValidityBounds(60, 86_400, 3_600),
        build_provider=build_provider,
    )


@pytest.fixture
def fax_provider() -> FaxProvider:
    return FaxProvider()


@pytest.fixture
async def gateway(
    settings: Settings, runtime: Runtime, fax_provider: FaxProvider
) -> AsyncIterator[tuple[httpx.AsyncClient, Pipeline]]:
    """The embedded gateway (API, pipeline, the three channels' simulators) serving FAX too."""
    registry = CHANNELS.including(fax_channel(fax_provider))
    runtime.channels = registry  # what Runtime.start(settings, registry) gives a process
    pipeline = await start_pipeline(settings, runtime)
    webhooks = [route for provider in pipeline.providers.values() for route in provider.webhook_routes()]
    app = create_app(settings, runtime, webhooks)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client, pipeline
    finally:
        await pipeline.stop()


async def test_a_channel_added_to_the_registry_is_served_end_to_end(
    gateway: tuple[httpx.AsyncClient, Pipeline], runtime: Runtime, fax_provider: FaxProvider
) -> None:
    client, pipeline = gateway
    partner = await make_partner(runtime)
    sent = await client.post(
        f"{BASE}/fax/messages",
        json={"to": "+4915112345678", "pages": 3, "reference": "invoice-7"},
        headers=partner.headers,
    )
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["customerMessageId"]
    assert sent.headers["location"].endswith(f"/messages/status/{message_id}?channel=FAX")
    assert sent.json()["channel"] == "FAX"
    assert sent.json()["deliveryStatus"] == "UNKNOWN"

    status: dict[str, Any] = {}
    for _ in range(200):
        answer = await client.get(f"{BASE}/messages/status/{message_id}?channel=FAX", headers=partner.headers)
        assert answer.status_code == 200, answer.text
        status = answer.json()
        if status["deliveryStatus"] == "DELIVERED":
            break
        await asyncio.sleep(0.02)
    assert status["deliveryStatus"] == "DELIVERED", status
    assert status["deliveryStatusDescription"] == "All pages received"
    assert (status["reference"], status["segments"]) == ("invoice-7", 3)
    assert [message.message_id for message in fax_provider.sent] == [message_id]
    assert fax_provider.sent[0].content["pages"] == 3
    assert pipeline.providers[FAX] is fax_provider

    events = await client.get(f"{BASE}/messages/{message_id}/events?channel=FAX", headers=partner.headers)
    assert [event["deliveryStatus"] for event in events.json()["events"]] == ["UNKNOWN", "SENT", "DELIVERED"]
    assert events.json()["events"][-1]["rawState"] == "CONFIRMED"

    batch = await client.get(f"{BASE}/messages/status?ids={message_id}&channel=FAX", headers=partner.headers)
    assert [item["customerMessageId"] for item in batch.json()] == [message_id]
    history = await client.get(f"{BASE}/messages/history?channel=FAX", headers=partner.headers)
    assert [item["customerMessageId"] for item in history.json()["items"]] == [message_id]
    # Scoped like every channel: the message is not an SMS, and not another company's.
    assert (
        await client.get(f"{BASE}/messages/status/{message_id}?channel=SMS", headers=partner.headers)
    ).status_code == 404
    other = await make_partner(runtime, "Other")
    assert (
        await client.get(f"{BASE}/messages/status/{message_id}?channel=FAX", headers=other.headers)
    ).status_code == 404


async def test_a_channel_added_to_the_registry_has_its_rules_and_its_name_in_the_contract(
    gateway: tuple[httpx.AsyncClient, Pipeline], runtime: Runtime, fax_provider: FaxProvider
) -> None:
    client, _pipeline = gateway
    partner = await make_partner(runtime)
    refused = await client.post(
        f"{BASE}/fax/messages",
        json={"to": "+4915112345678", "pages": 0, "validitySeconds": 90_000},
        headers=partner.headers,
    )
    assert refused.status_code == 400
    assert {(error["field"], error["message"]) for error in refused.json()["errors"]} == {
        ("pages", "must be 1 to 50"),
        ("validitySeconds", "must be between 60 and 86400 for FAX"),
    }
    unknown = await client.get(f"{BASE}/messages/status/msg_x?channel=TELEX", headers=partner.headers)
    assert unknown.json()["errors"] == [
        {"field": "channel", "message": "must be one of SMS, RCS, WHATSAPP, FAX"}
    ]
    assert fax_provider.sent == []

    document = (await client.get(f"{BASE}/openapi.json")).json()
    operation = document["paths"][f"{BASE}/fax/messages"]["post"]
    assert (operation["operationId"], operation["summary"]) == ("sendFax", "Send a fax")
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "pages" in document["components"]["schemas"][body]["properties"]
    channel_parameter = next(
        parameter
        for parameter in document["paths"][f"{BASE}/messages/status/{{customerMessageId}}"]["get"][
            "parameters"
        ]
        if parameter["name"] == "channel"
    )
    # One shared Channel schema, referenced by every channel parameter and field.
    assert channel_parameter["schema"] == {"$ref": "#/components/schemas/Channel"}
    assert document["components"]["schemas"]["Channel"]["enum"] == ["SMS", "RCS", "WHATSAPP", "FAX"]


def test_the_registry_lists_the_contracts_channels_in_order() -> None:
    assert CHANNELS.names == ("SMS", "RCS", "WHATSAPP")
    assert CHANNELS.choices == "SMS, RCS, WHATSAPP"
    assert [entry.path for entry in CHANNELS] == ["sms", "rcs", "whatsapp"]
    assert CHANNELS.find("SMS") is Channel.SMS
    assert CHANNELS.find("sms") is None  # SPEC §1: exactly these names
    assert CHANNELS.find("FAX") is None
    assert CHANNELS.find(None) is None


@pytest.mark.parametrize(
    ("channel", "path"),
    [("SMS", "fax"), ("FAX", "sms"), ("fax", "fax"), ("FACSIMILE_X", "fax"), ("FAX", "Fax")],
    ids=[
        "name-taken",
        "path-taken",
        "lower-case-name",
        "name-longer-than-the-store-keeps",
        "upper-case-path",
    ],
)
def test_the_registry_refuses_an_entry_it_could_not_serve(channel: str, path: str) -> None:
    entry = fax_channel(FaxProvider())
    clash = ChannelEntry(
        channel=Channel(channel),
        path=path,
        noun=entry.noun,
        operation_id=entry.operation_id,
        request_type=entry.request_type,
        check=entry.check,
        validity=entry.validity,
        build_provider=entry.build_provider,
    )
    with pytest.raises(ValueError, match=channel):
        CHANNELS.including(clash)
