"""WhatsApp inbound `messages` webhooks: each user message as an InboundMessage (text, or the
caption or a summary of other types), another business number's skipped, and the provider
storing them once the signature holds (500 for Meta to post again when the store cannot)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from channels.harness import RecordingSink
from channels.whatsapp.test_provider import SETTINGS, graph_ok, signed
from partner_gateway.channels.whatsapp.provider import WhatsAppProvider
from partner_gateway.channels.whatsapp.webhooks import parse_inbound
from partner_gateway.domain.inbound import InboundMessage
from partner_gateway.domain.statuses import Channel

FIXTURE = Path(__file__).parents[2] / "fixtures" / "whatsapp" / "inbound_messages.json"


def test_every_message_type_is_read_with_its_text_or_a_summary() -> None:
    found = parse_inbound(json.loads(FIXTURE.read_bytes()), "106540352242922")
    assert [(m.kind, m.text) for m in found] == [
        ("text", "Does it come in another color?"),
        ("image", "This one"),
        ("audio", "[audio]"),
        ("location", "[location 37.44,-122.16] Philz Coffee, 101 Forest Ave"),
        ("interactive", "Yes please"),
        ("reaction", "👍"),
        ("unsupported", "[unsupported]"),
    ]  # the one without a sender is skipped
    first = found[0]
    assert (first.channel, first.sender, first.recipient, first.received_at) == (
        Channel.WHATSAPP, "+16505551234", "15550783881", 1_749_416_383_000,
    )  # fmt: skip
    assert first.provider_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert first.dedup_key == "whatsapp:" + first.provider_message_id
    assert first.raw[0]["text"] == {"body": "Does it come in another color?"}


def test_another_business_numbers_messages_are_skipped() -> None:
    assert parse_inbound(json.loads(FIXTURE.read_bytes()), "999") == []
    document = json.loads(FIXTURE.read_bytes())
    del document["entry"][0]["changes"][0]["value"]["metadata"]["display_phone_number"]
    assert {m.recipient for m in parse_inbound(document)} == {"106540352242922"}  # its id instead


@pytest.fixture
async def provider(sink: RecordingSink) -> AsyncIterator[WhatsAppProvider]:
    provider = WhatsAppProvider(SETTINGS, transport=httpx.MockTransport(lambda _: graph_ok()))
    await provider.start(sink)
    yield provider
    await provider.stop()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


async def test_the_provider_stores_them_and_answers_500_when_it_cannot(
    provider: WhatsAppProvider, sink: RecordingSink
) -> None:
    body = FIXTURE.read_bytes()
    sink.failures = 1
    assert (await provider.handle_webhook(body, signed(body), {}))[0] == 500
    assert (await provider.handle_webhook(body, {"x-hub-signature-256": "sha256=00"}, {}))[0] == 401
    assert sink.inbound == []
    assert (await provider.handle_webhook(body, signed(body), {}))[0] == 200
    assert len(sink.inbound) == 7
    assert all(isinstance(m, InboundMessage) for m in sink.inbound)
