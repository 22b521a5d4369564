"""The SMSC simulator, driven over real TCP: by smpplib (an independent SMPP client, blocking, so run
in a thread) for the protocol and the SPEC §6 outcome table, and by a small raw client on our own
codec where the test must misbehave itself (withhold deliver_sm_resp, send broken PDUs, pipeline)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

from partner_gateway.channels.smpp.codec.constants import CommandStatus, EsmClass
from partner_gateway.channels.smpp.codec.decoder import decode
from partner_gateway.channels.smpp.codec.encoder import encode
from partner_gateway.channels.smpp.codec.framing import PduReader
from partner_gateway.channels.smpp.codec.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
)
from partner_gateway.channels.smpp.codec.smpp_time import relative_validity
from partner_gateway.channels.smpp.codec.udh import udh_concat
from partner_gateway.channels.smpp.receipts import message_id_variants, parse_receipt, parse_receipt_text
from partner_gateway.domain.encoding import encode_gsm7, encode_ucs2
from partner_gateway.simulators.smsc import (
    FATES,
    SmscConfig,
    SmscScript,
    SmscSimulator,
    fate_for,
    serve_forever,
)
from partner_gateway.simulators.smsc.fates import (
    MessageIds,
    ReceiptSpec,
    receipt_message_id,
    receipt_pdu,
    text_preview,
    wanted,
)

S = CommandStatus
WAIT = 5.0  # the bound on every wait for something that should happen
QUIET = 0.3  # how long to listen when something should NOT happen (receipts come after <= 0.05 s)
FAST: dict[str, Any] = {
    "port": 0,
    "seed": 7,
    "receipt_delay_min_seconds": 0.01,
    "receipt_delay_max_seconds": 0.05,
    "receipt_retry_seconds": 0.05,
}


@asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[SmscSimulator]:
    async with SmscSimulator(SmscConfig(**(FAST | overrides))) as simulator:
        yield simulator


@pytest.fixture
async def smsc() -> AsyncIterator[SmscSimulator]:
    async with running() as simulator:
        yield simulator


# -- smpplib, in a thread ------------------------------------------------------------------------------


class SmpplibEsme:
    """A blocking smpplib client that answers every deliver_sm with ESME_ROK and keeps it."""

    def __init__(self, port: int) -> None:
        self.client = smpplib.client.Client("127.0.0.1", port, timeout=WAIT, allow_unknown_opt_params=True)
        self.receipts: list[Any] = []

    def bind(self, mode: str = "transceiver", system_id: str = "gateway", password: str | None = None) -> Any:
        self.client.connect()
        password = "secret" if password is None else password
        return getattr(self.client, f"bind_{mode}")(system_id=system_id, password=password)

    def submit(self, destination: str, text: bytes = b"Hello from the test", **fields: Any) -> Any:
        self.send(destination, text, **fields)
        return self.read_until("submit_sm_resp")

    def send(self, destination: str, text: bytes = b"Hello from the test", **fields: Any) -> None:
        fields.setdefault("registered_delivery", 1)
        self.client.send_message(
            source_addr="Acme", destination_addr=destination, short_message=text, **fields
        )

    def read(self, timeout: float) -> Any:
        """The next PDU, None after ``timeout``; receipts are acknowledged and kept."""
        self.client._socket.settimeout(timeout)
        try:
            pdu = self.client.read_pdu()
        except TimeoutError:
            return None
        if pdu.command == "deliver_sm":
            self.receipts.append(pdu)
            resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=self.client)
            resp.sequence = pdu.sequence
            self.client.send_pdu(resp)
        return pdu

    def read_until(self, command: str, timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            pdu = self.read(left)
            if pdu is not None and pdu.command == command:
                return pdu
        raise TimeoutError(f"no {command} within {timeout} s")

    def wait_receipts(self, count: int, timeout: float = WAIT) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.receipts) < count and (left := deadline - time.monotonic()) > 0:
            self.read(left)
        if len(self.receipts) < count:
            raise TimeoutError(f"{len(self.receipts)} of {count} receipts within {timeout} s")
        return self.receipts

    def listen(self, seconds: float = QUIET) -> list[Any]:
        """Receipts (all so far) after reading for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.read(left)
        return self.receipts

    def is_closed_by_peer(self, timeout: float = WAIT) -> bool:
        self.client._socket.settimeout(timeout)
        try:
            return self.client._socket.recv(1) == b""
        except OSError:
            return True

    def close(self) -> None:
        if self.client._socket is None:
            return
        if self.client.state in smpplib.consts.COMMAND_STATES["unbind"]:
            with suppress(smpplib.exceptions.PDUError, smpplib.exceptions.ConnectionError, OSError):
                self.client.unbind()
        self.client.disconnect()


@asynccontextmanager
async def smpplib_esme(port: int, mode: str | None = "transceiver") -> AsyncIterator[SmpplibEsme]:
    esme = SmpplibEsme(port)
    try:
        if mode is not None:
            resp = await asyncio.to_thread(esme.bind, mode)
            assert resp.status == S.ESME_ROK
        yield esme
    finally:
        await asyncio.to_thread(esme.close)


async def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait (bounded) for the simulator to have processed what the client already sent."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def text_of(receipt: Any) -> Any:
    parsed = parse_receipt_text(receipt.short_message.decode("latin-1"))
    assert parsed is not None, receipt.short_message
    return parsed


# -- a raw client on our codec ---------------------------------------------------------------------------


class RawEsme:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = PduReader()
        self.inbox: deque[Pdu] = deque()
        self.sequence = 0

    @classmethod
    async def open(cls, port: int) -> RawEsme:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    async def send(self, *pdus: Pdu) -> None:
        self.writer.write(b"".join(encode(pdu) for pdu in pdus))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = WAIT) -> Pdu:
        async with asyncio.timeout(timeout):
            while not self.inbox:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("closed by the SMSC")
                self.inbox.extend(decode(frame) for frame in self.framer.feed(data))
        return self.inbox.popleft()

    async def nothing_within(self, seconds: float = QUIET) -> bool:
        try:
            pdu = await self.recv(seconds)
        except TimeoutError:
            return True
        self.inbox.appendleft(pdu)
        return False

    async def closed_by_peer(self, timeout: float = WAIT) -> bool:
        async with asyncio.timeout(timeout):
            while data := await self.reader.read(65536):
                self.inbox.extend(decode(frame) for frame in self.framer.feed(data))
        return True

    async def bind(
        self, kind: type[BindTransceiver | BindTransmitter | BindReceiver] = BindTransceiver
    ) -> Pdu:
        await self.send(kind(sequence_number=self.next_sequence(), system_id="gateway", password="secret"))
        return await self.recv()

    def submit_sm(self, destination: str, text: bytes = b"Hello", **fields: Any) -> SubmitSm:
        fields.setdefault("registered_delivery", 1)
        return SubmitSm(
            sequence_number=self.next_sequence(),
            source_addr="Acme",
            destination_addr=destination,
            short_message=text,
            **fields,
        )

    async def submit(self, destination: str, text: bytes = b"Hello", **fields: Any) -> SubmitSm:
        pdu = self.submit_sm(destination, text, **fields)
        await self.send(pdu)
        return pdu

    async def receipt(self, timeout: float = WAIT, answer: int | None = S.ESME_ROK) -> DeliverSm:
        """The next deliver_sm (skipping nothing else: a different PDU fails the test)."""
        pdu = await self.recv(timeout)
        assert isinstance(pdu, DeliverSm), pdu
        if answer is not None:
            await self.send(DeliverSmResp(sequence_number=pdu.sequence_number, command_status=answer))
        return pdu

    async def close(self) -> None:
        self.writer.close()
        with suppress(OSError):
            await self.writer.wait_closed()


@asynccontextmanager
async def raw_esme(port: int, kind: Any = BindTransceiver) -> AsyncIterator[RawEsme]:
    esme = await RawEsme.open(port)
    try:
        if kind is not None:
            resp = await esme.bind(kind)
            assert resp.command_status == S.ESME_ROK
        yield esme
    finally:
        await esme.close()


# -- the pure rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "status", "stats"),
    [
        ("447700900100", S.ESME_ROK, ("DELIVRD",)),
        ("447700900189", S.ESME_ROK, ("DELIVRD",)),
        ("447700900190", S.ESME_RINVDSTADR, ()),
        ("447700900191", S.ESME_ROK, ("UNDELIV",)),
        ("447700900192", S.ESME_ROK, ("EXPIRED",)),
        ("447700900193", S.ESME_ROK, ("ENROUTE",)),
        ("447700900194", S.ESME_ROK, ()),
        ("447700900195", S.ESME_ROK, ("UNKNOWN",)),
        ("447700900196", S.ESME_ROK, ("REJECTD",)),
        ("447700900199", S.ESME_ROK, ("DELIVRD",)),
        ("+44 7700 900 1-91", S.ESME_ROK, ("UNDELIV",)),
        ("7", S.ESME_ROK, ("DELIVRD",)),
    ],
)
def test_fate_comes_from_the_last_two_digits(destination: str, status: int, stats: tuple[str, ...]) -> None:
    fate = fate_for(destination)
    assert fate.submit_status == status
    assert tuple(spec.stat for spec in fate.receipts) == stats


def test_fate_table_receipts_carry_consistent_states() -> None:
    assert sorted(FATES) == list(range(90, 97))
    for fate in FATES.values():
        for spec in fate.receipts:
            assert (spec.error != 0) == (spec.stat in {"UNDELIV", "REJECTD"})
            assert spec.intermediate == (spec.stat == "ENROUTE")


@pytest.mark.parametrize(
    ("registered_delivery", "delivered", "failed", "intermediate"),
    [
        (0, False, False, False),
        (1, True, True, True),
        (2, False, True, True),
        (3, True, False, True),
        (0x10, False, False, True),
        (0x11, True, True, True),
    ],
)
def test_registered_delivery_selects_receipts(
    registered_delivery: int, delivered: bool, failed: bool, intermediate: bool
) -> None:
    assert wanted(ReceiptSpec("DELIVRD", 2), registered_delivery) is delivered
    assert wanted(ReceiptSpec("UNDELIV", 5, 1), registered_delivery) is failed
    assert wanted(ReceiptSpec("ENROUTE", 1, intermediate=True), registered_delivery) is intermediate


def test_message_ids_decimal_and_hex() -> None:
    ids = MessageIds(123_456_789)
    assert ids.next("decimal") == "0123456789"
    assert ids.next("hex") == "0B000000075BCD16"  # 123_456_790, after the Vonage-like 0B prefix
    hex_id = MessageIds(255).next("hex")
    assert hex_id == "0B000000000000FF"
    assert receipt_message_id(hex_id, hex_to_decimal=True) == str(0x0B000000000000FF)
    assert receipt_message_id("0000012", strip_zeros=True) == "12"
    assert receipt_message_id("0000", strip_zeros=True) == "0"
    assert str(0x0B000000000000FF) in message_id_variants(hex_id)


def test_receipt_pdu_reads_back_with_the_gateway_parser() -> None:
    submit = SubmitSm(
        sequence_number=1,
        source_addr="Acme",
        source_addr_ton=5,
        destination_addr="447700900191",
        dest_addr_ton=1,
        dest_addr_npi=1,
        esm_class=EsmClass.UDHI,
        short_message=udh_concat(9, 2, 1) + encode_gsm7("Grüße_{x} and more text here"),
    )
    submitted = datetime(2026, 11, 27, 10, 30, 15, tzinfo=UTC)
    pdu = receipt_pdu(
        submit,
        ReceiptSpec("UNDELIV", 5, 1),
        receipt_id="0712943377",
        submitted_at=submitted,
        done_at=submitted + timedelta(seconds=50),
        date_digits=12,
        tlvs=True,
    )
    assert pdu.source_addr == "447700900191"
    assert pdu.destination_addr == "Acme"
    assert (pdu.source_addr_ton, pdu.dest_addr_ton) == (1, 5)
    assert pdu.short_message == (
        b"id:0712943377 sub:001 dlvrd:000 submit date:261127103015 done date:261127103105"
        b" stat:UNDELIV err:001 Text:Gr??e??x? and more t"  # UDH skipped, 20 characters, GSM-safe
    )
    decoded = decode(encode(replace(pdu, sequence_number=3)))
    assert isinstance(decoded, DeliverSm)
    receipt = parse_receipt(decoded)
    assert receipt is not None
    assert (receipt.message_id, receipt.state, receipt.error_code) == ("0712943377", "UNDELIV", "001")
    assert receipt.submit_date == submitted
    assert not receipt.is_intermediate
    assert receipt.outcome.status == "ERROR"


def test_text_preview_decodes_ucs2_and_skips_the_udh() -> None:
    ucs2 = SubmitSm(
        sequence_number=1,
        esm_class=0x40,
        data_coding=8,
        short_message=udh_concat(1, 2, 2) + encode_ucs2("Hi 😀"),
    )
    assert text_preview(ucs2) == "Hi ?"
    binary = SubmitSm(sequence_number=1, data_coding=0, short_message=b"\xff@abc")
    assert text_preview(binary) == "??abc"


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="receipt delays"):
        SmscConfig(receipt_delay_min_seconds=2, receipt_delay_max_seconds=1)
    with pytest.raises(ValueError, match="password at most 8"):
        SmscConfig(password="much-too-long")
    with pytest.raises(ValueError, match="max_throughput"):
        SmscConfig(max_throughput=0)


# -- binds, enquire_link, unbind (smpplib) --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["transceiver", "transmitter", "receiver"])
async def test_binds_with_good_credentials(smsc: SmscSimulator, mode: str, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="partner_gateway.simulators.smsc")
    async with smpplib_esme(smsc.port or 0, mode=None) as esme:
        resp = await asyncio.to_thread(esme.bind, mode)
        assert resp.status == S.ESME_ROK
        assert resp.system_id == b"SMSCSIM"
    assert smsc.stats.binds == 1
    assert f"bind_{mode}" in caplog.text
    assert "secret" not in caplog.text


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [("gateway", "wrong", S.ESME_RINVPASWD), ("nobody", "secret", S.ESME_RINVSYSID)],
)
async def test_bad_credentials_are_refused_and_the_connection_closed(
    smsc: SmscSimulator, system_id: str, password: str, status: int, caplog: Any
) -> None:
    async with smpplib_esme(smsc.port or 0, mode=None) as esme:
        with pytest.raises(smpplib.exceptions.PDUError) as refused:
            await asyncio.to_thread(esme.bind, "transceiver", system_id, password)
        assert refused.value.args[1] == status
        assert await asyncio.to_thread(esme.is_closed_by_peer)
    assert (smsc.stats.binds, smsc.stats.bind_rejections) == (0, 1)
    assert "wrong" not in caplog.text


async def test_enquire_link_is_answered_bound_or_not(smsc: SmscSimulator) -> None:
    async with smpplib_esme(smsc.port or 0) as esme:
        enquire = smpplib.smpp.make_pdu("enquire_link", client=esme.client)
        await asyncio.to_thread(esme.client.send_pdu, enquire)
        resp = await asyncio.to_thread(esme.read_until, "enquire_link_resp")
        assert resp.sequence == enquire.sequence
        assert resp.status == S.ESME_ROK
    async with raw_esme(smsc.port or 0, kind=None) as raw:
        await raw.send(EnquireLink(sequence_number=77))
        assert await raw.recv() == EnquireLinkResp(sequence_number=77)


async def test_unbind_is_answered_then_the_connection_closed(smsc: SmscSimulator) -> None:
    async with smpplib_esme(smsc.port or 0) as esme:
        resp = await asyncio.to_thread(esme.client.unbind)
        assert resp.command == "unbind_resp"
        assert resp.status == S.ESME_ROK
        assert await asyncio.to_thread(esme.is_closed_by_peer)


# -- the SPEC §6 outcome table (smpplib) ----------------------------------------------------------------

OUTCOMES = [
    # suffix, submit_sm_resp status, receipt (stat, message_state, esm_class, err) or None
    ("00", S.ESME_ROK, ("DELIVRD", 2, 0x04, "000")),
    ("90", S.ESME_RINVDSTADR, None),
    ("91", S.ESME_ROK, ("UNDELIV", 5, 0x04, "001")),
    ("92", S.ESME_ROK, ("EXPIRED", 3, 0x04, "000")),
    ("93", S.ESME_ROK, ("ENROUTE", 1, 0x20, "000")),
    ("94", S.ESME_ROK, None),
    ("95", S.ESME_ROK, ("UNKNOWN", 7, 0x04, "000")),
    ("96", S.ESME_ROK, ("REJECTD", 8, 0x04, "013")),
]


@pytest.mark.parametrize(("suffix", "status", "expected"), OUTCOMES, ids=[row[0] for row in OUTCOMES])
async def test_outcome_by_destination(
    smsc: SmscSimulator, suffix: str, status: int, expected: tuple[str, int, int, str] | None
) -> None:
    async with smpplib_esme(smsc.port or 0) as esme:
        resp = await asyncio.to_thread(esme.submit, f"4477009001{suffix}", b"Your code is 123456")
        assert resp.status == status
        if status != S.ESME_ROK:
            assert not resp.message_id
        receipts = await asyncio.to_thread(esme.listen, QUIET)
        if expected is None:
            assert receipts == []
            return
        stat, state, esm_class, err = expected
        assert len(receipts) == 1  # one receipt, no final after the ENROUTE of 93
        receipt = receipts[0]
        assert receipt.esm_class == esm_class
        assert receipt.receipted_message_id == resp.message_id
        assert receipt.message_state == state
        assert receipt.source_addr == f"4477009001{suffix}".encode()
        assert receipt.destination_addr == b"Acme"
        assert (receipt.network_error_code is not None) == (err != "000")
        text = text_of(receipt)
        assert (text.message_id, text.state, text.error_code) == (resp.message_id.decode(), stat, err)
        assert receipt.short_message.endswith(b"Text:Your code is 123456")
        assert receipt.short_message.startswith(b"id:" + resp.message_id + b" sub:001 dlvrd:")
        assert text.submit_date is not None
        assert text.done_date is not None
    assert smsc.stats.receipts_acknowledged == smsc.stats.receipts_sent == 1
    assert smsc.pending_receipts == 0


async def test_two_part_udh_message_gets_two_ids_and_two_receipts(smsc: SmscSimulator) -> None:
    text = "Lorem ipsum dolor sit amet. " * 8
    parts, encoding, esm_class = smpplib.gsm.make_parts(text)
    assert len(parts) == 2
    assert esm_class == 0x40
    async with smpplib_esme(smsc.port or 0) as esme:
        ids = []
        for part in parts:
            resp = await asyncio.to_thread(
                esme.submit, "447700900112", part, esm_class=esm_class, data_coding=encoding
            )
            assert resp.status == S.ESME_ROK
            ids.append(resp.message_id)
        receipts = await asyncio.to_thread(esme.wait_receipts, 2)
        await asyncio.to_thread(esme.listen, QUIET)
    assert len(set(ids)) == 2
    assert sorted(r.receipted_message_id for r in receipts) == sorted(ids)
    assert {text_of(r).state for r in receipts} == {"DELIVRD"}
    assert len(receipts) == 2
    previews = {r.short_message.split(b"Text:")[1].decode() for r in receipts}
    assert previews == {text[:20], text[153:173]}  # each part's own text, without its UDH


async def test_sar_parts_share_the_destination_fate(smsc: SmscSimulator) -> None:
    async with raw_esme(smsc.port or 0) as raw:
        for seq in (1, 2):
            await raw.submit(
                "447700900191", b"part", sar_msg_ref_num=5, sar_total_segments=2, sar_segment_seqnum=seq
            )
        answers = [await raw.recv() for _ in range(4)]
    resps = [p for p in answers if isinstance(p, SubmitSmResp)]
    receipts = [p for p in answers if isinstance(p, DeliverSm)]
    assert len(resps) == 2
    assert len(receipts) == 2
    assert {r.receipted_message_id for r in receipts} == {r.message_id for r in resps}
    assert {r.message_state for r in receipts} == {5}


async def test_receipt_tlvs_can_be_left_out() -> None:
    async with (
        running(receipt_tlvs=False, date_digits=12, message_id_format="hex") as smsc,
        smpplib_esme(smsc.port or 0) as esme,
    ):
        resp = await asyncio.to_thread(esme.submit, "447700900191")
        (receipt,) = await asyncio.to_thread(esme.wait_receipts, 1)
    assert receipt.receipted_message_id is None
    assert receipt.message_state is None
    assert receipt.network_error_code is None
    assert len(resp.message_id) == 16
    assert int(resp.message_id, 16)
    text = text_of(receipt)
    assert text.message_id == resp.message_id.decode()
    assert text.state == "UNDELIV"
    assert b"submit date:" + text.submit_date.strftime("%y%m%d%H%M%S").encode() in receipt.short_message


async def test_no_receipt_when_registered_delivery_is_zero(smsc: SmscSimulator) -> None:
    async with smpplib_esme(smsc.port or 0) as esme:
        resp = await asyncio.to_thread(esme.submit, "447700900100", registered_delivery=0)
        assert resp.status == S.ESME_ROK
        assert await asyncio.to_thread(esme.listen) == []


async def test_validity_shorter_than_the_delivery_turns_delivered_into_expired() -> None:
    async with (
        running(receipt_delay_min_seconds=30, receipt_delay_max_seconds=30) as smsc,
        raw_esme(smsc.port or 0) as raw,
    ):
        await raw.submit("447700900100", validity_period=relative_validity(1))
        resp = await raw.recv()
        receipt = await raw.receipt(timeout=WAIT)
        assert isinstance(resp, SubmitSmResp)
        assert receipt.receipted_message_id == resp.message_id
        assert receipt.message_state == 3
        await raw.submit("447700900100", validity_period="not-a-time-16chr")
        assert (await raw.recv()).command_status == S.ESME_RINVEXPIRY


async def test_receipts_go_to_a_receiver_on_another_connection(smsc: SmscSimulator) -> None:
    async with (
        smpplib_esme(smsc.port or 0, "transmitter") as tx,
        smpplib_esme(smsc.port or 0, "receiver") as rx,
    ):
        resp = await asyncio.to_thread(tx.submit, "447700900142")
        (receipt,) = await asyncio.to_thread(rx.wait_receipts, 1)
        assert receipt.receipted_message_id == resp.message_id
        assert await asyncio.to_thread(tx.listen) == []


async def test_a_receipt_waits_for_a_receiver_to_bind() -> None:
    async with running(receipt_retry_seconds=0.05) as smsc, raw_esme(smsc.port or 0, BindTransmitter) as tx:
        await tx.submit("447700900100")
        resp = await tx.recv()
        assert isinstance(resp, SubmitSmResp)
        await asyncio.sleep(QUIET)
        assert smsc.stats.receipts_sent == 0
        assert smsc.pending_receipts == 1
        async with raw_esme(smsc.port or 0, BindReceiver) as rx:
            receipt = await rx.receipt()
            assert receipt.receipted_message_id == resp.message_id
            await rx.submit("447700900100")  # a receiver cannot submit
            assert (await rx.recv()).command_status == S.ESME_RINVBNDSTS
    assert smsc.stats.receipts_resent == 0


# -- throttling, duplicates, receipt resends --------------------------------------------------------------


async def test_throttles_beyond_max_throughput() -> None:
    async with running(max_throughput=5) as smsc, smpplib_esme(smsc.port or 0) as esme:

        def burst() -> list[int]:
            for _ in range(20):
                esme.send("447700900194")
            return [esme.read_until("submit_sm_resp").status for _ in range(20)]

        statuses = await asyncio.to_thread(burst)
        assert statuses.count(S.ESME_ROK) >= 5  # the one-second burst, plus what refilled meanwhile
        assert statuses.count(S.ESME_RTHROTTLED) >= 10
        assert statuses.count(S.ESME_RTHROTTLED) == 20 - statuses.count(S.ESME_ROK)
        assert smsc.stats.throttled == statuses.count(S.ESME_RTHROTTLED)
        await asyncio.sleep(0.5)  # 5/s refills in a second: the link recovers
        resp = await asyncio.to_thread(esme.submit, "447700900194")
        assert resp.status == S.ESME_ROK


async def test_counts_duplicates_by_destination_and_content(smsc: SmscSimulator) -> None:
    async with smpplib_esme(smsc.port or 0) as esme:
        for destination, text in [("447700900194", b"A"), ("447700900194", b"A"), ("447700900194", b"B")]:
            await asyncio.to_thread(esme.submit, destination, text)
        await asyncio.to_thread(esme.submit, "447700900194", b"A")
        await asyncio.to_thread(esme.submit, "447700900190", b"A")  # rejected: not a delivery
    assert smsc.stats.duplicates == 2
    assert smsc.stats.submits_by_content[("447700900194", b"A")] == 3
    assert smsc.stats.submits_by_content[("447700900194", b"B")] == 1
    assert (smsc.stats.submits, smsc.stats.submits_accepted, smsc.stats.submits_rejected) == (5, 4, 1)


async def test_duplicate_tracking_is_bounded() -> None:
    async with running(max_tracked_submissions=2) as smsc:
        for n in range(5):
            smsc.record_content("447700900194", bytes([n]))
        assert len(smsc.stats.submits_by_content) == 2


async def test_unacknowledged_receipt_is_resent_a_bounded_number_of_times() -> None:
    config = {"deliver_sm_resp_timeout_seconds": 0.1, "receipt_retry_seconds": 0.05, "max_receipt_resends": 2}
    async with running(**config) as smsc, raw_esme(smsc.port or 0) as raw:
        await raw.submit("447700900100")
        resp = await raw.recv()
        assert isinstance(resp, SubmitSmResp)
        copies = [await raw.receipt(answer=None) for _ in range(3)]
        assert {c.receipted_message_id for c in copies} == {resp.message_id}
        assert len({c.sequence_number for c in copies}) == 3
        assert await raw.nothing_within(QUIET)
        assert smsc.stats.receipts_sent == 3
        assert smsc.stats.receipts_resent == 2
        assert smsc.stats.receipts_abandoned == 1
        assert smsc.stats.receipts_acknowledged == 0
        assert smsc.pending_receipts == 0


async def test_receipt_answered_with_an_error_is_resent_until_acknowledged() -> None:
    async with running(receipt_retry_seconds=0.05) as smsc, raw_esme(smsc.port or 0) as raw:
        await raw.submit("447700900100")
        await raw.recv()
        first = await raw.receipt(answer=S.ESME_RX_T_APPN)
        nacked = await raw.receipt(answer=None)
        await raw.send(GenericNack(sequence_number=nacked.sequence_number, command_status=S.ESME_RSYSERR))
        third = await raw.receipt()
        assert first.short_message == nacked.short_message == third.short_message
        assert await raw.nothing_within(QUIET)
    assert (smsc.stats.receipts_resent, smsc.stats.receipts_acknowledged) == (2, 1)


async def test_receipt_in_flight_when_the_connection_drops_comes_again_on_the_next_bind() -> None:
    config = {"receipt_retry_seconds": 0.05}
    async with running(**config) as smsc:
        async with raw_esme(smsc.port or 0) as raw:
            await raw.submit("447700900100")
            resp = await raw.recv()
            await raw.receipt(answer=None)
        async with raw_esme(smsc.port or 0) as again:
            receipt = await again.receipt()
            await eventually(lambda: smsc.stats.receipts_acknowledged == 1)
    assert isinstance(resp, SubmitSmResp)
    assert receipt.receipted_message_id == resp.message_id
    assert (smsc.stats.receipts_resent, smsc.stats.receipts_acknowledged) == (1, 1)


# -- protocol errors ----------------------------------------------------------------------------------------


async def test_malformed_and_unknown_pdus_get_generic_nack(smsc: SmscSimulator) -> None:
    async with raw_esme(smsc.port or 0) as raw:
        await raw.send_raw(bytes.fromhex("00000010 00000003 00000000 0000002a"))  # query_sm: not supported
        assert await raw.recv() == GenericNack(sequence_number=42, command_status=S.ESME_RINVCMDID)
        truncated = encode(raw.submit_sm("447700900100"))[:30]
        await raw.send_raw(len(truncated).to_bytes(4, "big") + truncated[4:])
        nack = await raw.recv()
        assert isinstance(nack, GenericNack)
        assert nack.command_status == S.ESME_RINVCMDLEN
        await raw.send(DeliverSm(sequence_number=9))
        assert await raw.recv() == GenericNack(sequence_number=9, command_status=S.ESME_RINVCMDID)
        again = await raw.bind()
        assert again.command_status == S.ESME_RALYBND
        await raw.send_raw(bytes.fromhex("00000008 00000004"))  # command_length below a header
        assert (await raw.recv()).command_status == S.ESME_RINVCMDLEN
        assert await raw.closed_by_peer()
    assert smsc.stats.generic_nacks == 4


async def test_submit_before_bind_is_refused(smsc: SmscSimulator) -> None:
    async with raw_esme(smsc.port or 0, kind=None) as raw:
        await raw.submit("447700900100")
        resp = await raw.recv()
        assert isinstance(resp, SubmitSmResp)
        assert resp.command_status == S.ESME_RINVBNDSTS


# -- scripted misbehaviour ------------------------------------------------------------------------------------


async def test_script_rejects_the_next_binds(smsc: SmscSimulator) -> None:
    smsc.script.reject_binds = 1
    async with smpplib_esme(smsc.port or 0, mode=None) as esme:
        with pytest.raises(smpplib.exceptions.PDUError) as refused:
            await asyncio.to_thread(esme.bind)
        assert refused.value.args[1] == S.ESME_RBINDFAIL
    async with smpplib_esme(smsc.port or 0) as esme:
        assert esme.client.state == smpplib.consts.SMPP_CLIENT_STATE_BOUND_TRX
    assert smsc.script.reject_binds == 0
    assert smsc.stats.binds == 1


async def test_script_nacks_the_next_submits(smsc: SmscSimulator) -> None:
    smsc.script.nack_submits = 1
    async with raw_esme(smsc.port or 0) as raw:
        first = await raw.submit("447700900100")
        assert await raw.recv() == GenericNack(
            sequence_number=first.sequence_number, command_status=S.ESME_RSYSERR
        )
        second = await raw.submit("447700900194")
        resp = await raw.recv()
        assert resp.sequence_number == second.sequence_number
        assert resp.command_status == S.ESME_ROK
        assert await raw.nothing_within()
    assert smsc.stats.receipts_sent == 0


async def test_script_ignores_the_next_submits(smsc: SmscSimulator) -> None:
    smsc.script.ignore_submits = 2
    async with raw_esme(smsc.port or 0) as raw:
        await raw.submit("447700900100")
        await raw.submit("447700900100")
        assert await raw.nothing_within()
        answered = await raw.submit("447700900194")
        assert (await raw.recv()).sequence_number == answered.sequence_number
    assert (smsc.stats.submits, smsc.stats.submits_accepted) == (3, 1)


async def test_script_sends_the_receipt_before_the_submit_sm_resp(smsc: SmscSimulator) -> None:
    smsc.script.receipt_before_response = 1
    async with raw_esme(smsc.port or 0) as raw:
        submit = await raw.submit("447700900196")
        receipt = await raw.receipt()
        resp = await raw.recv()
        assert isinstance(resp, SubmitSmResp)
        assert resp.sequence_number == submit.sequence_number
        assert receipt.receipted_message_id == resp.message_id
        assert receipt.message_state == 8
        await raw.submit("447700900100")
        assert isinstance(await raw.recv(), SubmitSmResp)  # only the next one: normal order again
        assert isinstance(await raw.recv(), DeliverSm)


async def test_script_sends_every_receipt_twice(smsc: SmscSimulator) -> None:
    smsc.script.duplicate_receipts = True
    async with smpplib_esme(smsc.port or 0) as esme:
        resp = await asyncio.to_thread(esme.submit, "447700900100")
        receipts = await asyncio.to_thread(esme.wait_receipts, 2)
        await asyncio.to_thread(esme.listen)
    assert len(receipts) == 2
    assert receipts[0].short_message == receipts[1].short_message
    assert {r.receipted_message_id for r in receipts} == {resp.message_id}
    assert (smsc.stats.receipts_sent, smsc.stats.receipts_acknowledged) == (2, 2)


async def test_script_hex_ids_with_decimal_receipts_as_vonage(smsc: SmscSimulator) -> None:
    smsc.script.hex_ids_decimal_receipts = True
    async with smpplib_esme(smsc.port or 0) as esme:
        resp = await asyncio.to_thread(esme.submit, "447700900100")
        (receipt,) = await asyncio.to_thread(esme.wait_receipts, 1)
    hex_id = resp.message_id.decode()
    assert len(hex_id) == 16
    assert hex_id == hex_id.upper()
    decimal = str(int(hex_id, 16))
    assert text_of(receipt).message_id == decimal == receipt.receipted_message_id.decode()
    assert decimal in message_id_variants(hex_id)


async def test_script_strips_leading_zeros_from_receipt_ids(smsc: SmscSimulator) -> None:
    smsc.script.strip_receipt_id_zeros = True
    async with smpplib_esme(smsc.port or 0) as esme:
        resp = await asyncio.to_thread(esme.submit, "447700900100")
        (receipt,) = await asyncio.to_thread(esme.wait_receipts, 1)
    assert resp.message_id.startswith(b"0")
    assert len(resp.message_id) == 10
    assert receipt.receipted_message_id == resp.message_id.lstrip(b"0")
    assert text_of(receipt).message_id == resp.message_id.lstrip(b"0").decode()


async def test_script_twelve_digit_dates(smsc: SmscSimulator) -> None:
    smsc.script.twelve_digit_dates = True
    async with smpplib_esme(smsc.port or 0) as esme:
        await asyncio.to_thread(esme.submit, "447700900100")
        (receipt,) = await asyncio.to_thread(esme.wait_receipts, 1)
    text = receipt.short_message.decode()
    submit_date = text.split("submit date:")[1].split()[0]
    done_date = text.split("done date:")[1].split()[0]
    assert len(submit_date) == len(done_date) == 12
    assert text_of(receipt).submit_date is not None


async def test_script_drops_the_connection_after_answering_the_nth_submit(smsc: SmscSimulator) -> None:
    smsc.script.drop_at_submit = 2
    async with raw_esme(smsc.port or 0) as raw:
        await raw.send(raw.submit_sm("447700900194"), raw.submit_sm("447700900100"), raw.submit_sm("x00"))
        assert await raw.closed_by_peer()
        resps = [p for p in raw.inbox if isinstance(p, SubmitSmResp)]
    assert [r.sequence_number for r in resps] == [2, 3]  # after the bind's 1; the third submit is never read
    async with raw_esme(smsc.port or 0) as again:  # the accepted message's receipt comes on a new bind
        receipt = await again.receipt()
    assert receipt.receipted_message_id == resps[1].message_id
    assert smsc.script.drop_at_submit == 0
    assert smsc.stats.submits == 2


async def test_script_drops_the_connection_before_answering_the_nth_submit(smsc: SmscSimulator) -> None:
    smsc.script.drop_at_submit = 1
    smsc.script.drop_before_answer = True
    async with raw_esme(smsc.port or 0) as raw:
        await raw.submit("447700900100")
        assert await raw.closed_by_peer()
        assert not raw.inbox
    assert (smsc.stats.submits, smsc.stats.submits_accepted, smsc.pending_receipts) == (1, 0, 0)


# -- load, lifecycle, serve_forever ---------------------------------------------------------------------------


async def test_keeps_up_with_a_windowed_burst_on_one_connection() -> None:
    total, window = 3000, 200
    async with running(receipt_delay_max_seconds=0.2) as smsc, raw_esme(smsc.port or 0) as raw:
        started = time.monotonic()
        sent = answered = receipts = 0
        async with asyncio.timeout(30):
            while answered < total or receipts < total:
                batch = min(window - (sent - answered), total - sent)
                if batch > 0:
                    await raw.send(*(raw.submit_sm(f"4477{n:06d}00") for n in range(sent, sent + batch)))
                    sent += batch
                pdu = await raw.recv()
                if isinstance(pdu, SubmitSmResp):
                    assert pdu.command_status == S.ESME_ROK
                    answered += 1
                else:
                    assert isinstance(pdu, DeliverSm)
                    await raw.send(DeliverSmResp(sequence_number=pdu.sequence_number))
                    receipts += 1
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.05)
    assert smsc.stats.submits_accepted == total
    assert smsc.stats.receipts_acknowledged == total
    assert smsc.stats.receipts_resent == 0
    print(f"{total} submits and receipts in {elapsed:.2f} s ({total / elapsed:.0f}/s)")


async def test_refuses_submits_when_the_receipt_queue_is_full() -> None:
    async with running(
        max_pending_receipts=2, receipt_delay_min_seconds=10, receipt_delay_max_seconds=10
    ) as smsc:
        async with raw_esme(smsc.port or 0) as raw:
            await raw.send(*(raw.submit_sm("447700900100") for _ in range(3)))
            statuses = [(await raw.recv()).command_status for _ in range(3)]
        assert statuses == [S.ESME_ROK, S.ESME_ROK, S.ESME_RMSGQFUL]
        assert smsc.pending_receipts == 2
    assert smsc.pending_receipts == 0  # stop() dropped them


async def test_start_stop_and_restart_guard() -> None:
    smsc = SmscSimulator(SmscConfig(port=0))
    port = await smsc.start()
    try:
        assert port == smsc.port
        assert port > 0
        with pytest.raises(RuntimeError, match="already running"):
            await smsc.start()
        raw = await RawEsme.open(port)
        await raw.bind()
    finally:
        await smsc.stop()
    assert await raw.closed_by_peer()
    await raw.close()
    await smsc.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_serve_forever_logs_where_it_listens_and_stats(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="partner_gateway.simulators.smsc")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(serve_forever(SmscConfig(port=port), stats_interval_seconds=0.05))
    try:
        async with asyncio.timeout(WAIT):
            while "SMSC stats:" not in caplog.text:
                await asyncio.sleep(0.02)
        async with raw_esme(port) as raw:
            await raw.send(EnquireLink(sequence_number=1))
            assert isinstance(await raw.recv(), EnquireLinkResp)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert f"listening on 127.0.0.1:{port}" in caplog.text
    assert "secret" not in caplog.text


def test_script_defaults_are_well_behaved() -> None:
    script = SmscScript()
    assert not any(getattr(script, field.name) for field in fields(script))
