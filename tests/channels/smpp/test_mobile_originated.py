"""Mobile-originated SMS: a deliver_sm that is not a receipt, read into an inbound message or a
part (channels/smpp/provider.py `mobile_originated`), and the whole path over SMPP: the SMSC
simulator delivering a user's message (UDH or sar_* concatenation, GSM 03.38 or UCS-2) to a
bound SmppProvider whose sink is the real store, redeliveries stored once, a temporary error
answered while the store cannot take it."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from channels.harness import RecordingSink
from partner_gateway.channels.smpp.codec.constants import EsmClass
from partner_gateway.channels.smpp.codec.pdu import DeliverSm
from partner_gateway.channels.smpp.codec.udh import udh_concat
from partner_gateway.channels.smpp.provider import SmppProvider, mobile_originated
from partner_gateway.channels.smpp.settings import SmppCarrier
from partner_gateway.dispatch.reports import ReportRecorder
from partner_gateway.domain.encoding import encode_gsm7
from partner_gateway.domain.inbound import InboundMessage, InboundPart
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.simulators.smsc import SmscConfig, SmscScript, SmscSimulator
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.repositories import inbound
from support import Partner

T0 = 1_795_000_000_000
USER = "4915112345678"


def deliver(short_message: bytes, **fields: object) -> DeliverSm:
    return DeliverSm(
        sequence_number=1, source_addr=USER, destination_addr="12345", short_message=short_message, **fields
    )  # type: ignore[arg-type]


def test_a_single_gsm_message_is_one_inbound_message() -> None:
    item = mobile_originated("smpp:a", deliver(encode_gsm7("Hi {there} €5")), T0)
    assert isinstance(item, InboundMessage)
    assert (item.channel, item.sender, item.recipient, item.text, item.kind, item.parts) == (
        Channel.SMS, "+4915112345678", "12345", "Hi {there} €5", "text", 1,
    )  # fmt: skip
    assert item.provider_message_id is None
    assert item.received_at == T0
    # The same PDU gives the same key (a redelivery), other text another.
    again = mobile_originated("smpp:a", deliver(encode_gsm7("Hi {there} €5")), T0 + 9)
    other = mobile_originated("smpp:a", deliver(encode_gsm7("Hi")), T0)
    assert again.dedup_key == item.dedup_key != other.dedup_key  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("coding", "payload", "text", "kind"),
    [
        (8, "Grüße 👋".encode("utf-16-be"), "Grüße 👋", "text"),
        (3, "café".encode("latin-1"), "café", "text"),
        (1, b"plain", "plain", "text"),
        (0, "café".encode("latin-1"), "café", "text"),  # a "default alphabet" octet > 0x7F: Latin-1
        (0xF0, encode_gsm7("class 0"), "class 0", "text"),
        (4, b"\x01\x02", "0102", "binary"),
    ],
)
def test_data_codings(coding: int, payload: bytes, text: str, kind: str) -> None:
    item = mobile_originated("smpp:a", deliver(payload, data_coding=coding), T0)
    assert isinstance(item, InboundMessage)
    assert (item.text, item.kind) == (text, kind)


def test_a_udh_part_and_a_sar_part_are_parts_and_message_payload_carries_text() -> None:
    udh = mobile_originated("smpp:a", deliver(udh_concat(9, 2, 1) + b"abc", esm_class=int(EsmClass.UDHI)), T0)
    assert udh == InboundPart("smpp:a", "+4915112345678", "12345", 9, 2, 1, 0, b"abc", T0)
    sar = mobile_originated(
        "smpp:a", deliver(b"def", sar_msg_ref_num=300, sar_total_segments=3, sar_segment_seqnum=3), T0
    )
    assert sar == InboundPart("smpp:a", "+4915112345678", "12345", 300, 3, 3, 0, b"def", T0)
    # A UDH without concatenation is stripped, not read as text; one part of one is a message.
    other_udh = bytes((0x03, 0x24, 0x01, 0x00))  # a national language shift element
    plain = mobile_originated("smpp:a", deliver(other_udh + b"hey", esm_class=int(EsmClass.UDHI)), T0)
    assert isinstance(plain, InboundMessage)
    assert plain.text == "hey"
    alone = mobile_originated(
        "smpp:a", deliver(udh_concat(1, 1, 1) + b"one", esm_class=int(EsmClass.UDHI)), T0
    )
    assert isinstance(alone, InboundMessage)
    assert alone.text == "one"
    payload = mobile_originated("smpp:a", deliver(b"", message_payload="long text".encode("latin-1")), T0)
    assert isinstance(payload, InboundMessage)
    assert payload.text == "long text"


async def _bound(smsc: SmscSimulator, sink: object) -> SmppProvider:
    carrier = SmppCarrier(
        name="acme", host="127.0.0.1", port=smsc.port, system_id="gateway", password=SecretStr("mo-pw")
    )
    provider = SmppProvider(carrier)
    await provider.start(sink)  # type: ignore[arg-type]
    assert await provider.wait_bound(10)
    return provider


async def _until(check: object, what: str) -> None:
    async with asyncio.timeout(20):
        while not await check():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_over_smpp_concatenated_and_redelivered_messages_are_stored_once(
    runtime: Runtime, partner: Partner
) -> None:
    async with runtime.database.write() as connection:
        await inbound.assign_number(connection, partner.company_id, Channel.SMS, "12345", now_ms())
    batcher = WriteBatcher(runtime.database)
    batcher.start()
    recorder = ReportRecorder(batcher)
    # Every deliver_sm is written twice (a carrier redelivering what it thinks was not answered).
    smsc = SmscSimulator(SmscConfig(port=0, password="mo-pw"), script=SmscScript(duplicate_receipts=True))
    await smsc.start()
    provider = await _bound(smsc, recorder)
    try:
        smsc.send_mo("+" + USER, "12345", "Ünïcødé ☃ " * 20, concat="udh")  # UCS-2, 200 characters: 3 parts
        smsc.send_mo("+" + USER, "12345", "g" * 300, concat="sar")  # GSM 03.38: 2 parts
        smsc.send_mo("+" + USER, "12345", "STOP")
        smsc.send_mo("+" + USER, "99999", "to nobody")

        async def all_acknowledged() -> bool:
            return smsc.stats.receipts_acknowledged == 2 * 7 and smsc.pending_receipts == 0

        await _until(all_acknowledged, "every deliver_sm and its copy acknowledged")
        async with runtime.database.read() as connection:
            items, _ = await inbound.inbound_page(
                connection, inbound.InboundFilter(partner.company_id), None, 10
            )
            opted = await inbound.is_opted_out(connection, partner.company_id, Channel.SMS, "+" + USER)
        assert sorted((item.text, item.parts) for item in items) == sorted(
            [("Ünïcødé ☃ " * 20, 3), ("g" * 300, 2), ("STOP", 1)]
        )
        assert opted
        assert recorder.inbound.stored == 3
        assert recorder.inbound.unassigned == 2
    finally:
        await provider.stop()
        await smsc.stop()
        await batcher.stop()


async def test_a_message_the_store_cannot_take_is_answered_as_a_temporary_error_and_comes_again() -> None:
    sink = RecordingSink(failures=1)
    smsc = SmscSimulator(SmscConfig(port=0, password="mo-pw", receipt_retry_seconds=0.1))
    await smsc.start()
    provider = await _bound(smsc, sink)
    try:
        smsc.send_mo("+" + USER, "12345", "hello")

        async def stored() -> bool:
            return bool(sink.inbound) and smsc.pending_receipts == 0

        await _until(stored, "the message offered again and acknowledged")
        assert smsc.stats.receipts_resent == 1  # the first answer was ESME_RX_T_APPN
        [item] = sink.inbound
        assert isinstance(item, InboundMessage)
        assert item.text == "hello"
    finally:
        await provider.stop()
        await smsc.stop()
