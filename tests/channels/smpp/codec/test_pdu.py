"""SMPP 3.4 codec: round trips, captured wire bytes, malformed input, framing, time/UDH helpers,
and interoperability with an independent codec (PyPI ``smpp.pdu3``, Jasmin's PDU library)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import random
import struct
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.channels.smpp.codec import encoder as encoder_module
from partner_gateway.channels.smpp.codec.constants import MAX_PDU_LENGTH, CommandId, CommandStatus, Tag
from partner_gateway.channels.smpp.codec.decoder import decode
from partner_gateway.channels.smpp.codec.encoder import encode
from partner_gateway.channels.smpp.codec.framing import PduReader
from partner_gateway.channels.smpp.codec.pdu import (
    PDU_TYPES,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    NetworkErrorCode,
    Pdu,
    PduError,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from partner_gateway.channels.smpp.codec.smpp_time import absolute_time, parse_smpp_time, relative_validity
from partner_gateway.channels.smpp.codec.udh import ConcatInfo, parse_udh_concat, udh_concat

S = CommandStatus
RECEIPT_TEXT = (
    b"id:1001 sub:001 dlvrd:001 submit date:2611271200 done date:261127120130 stat:DELIVRD err:000 Text:hi"
)
SAMPLES: list[Pdu] = [
    BindTransmitter(sequence_number=1, system_id="acme", password="s3cret", system_type="SMPP", addr_ton=1),
    BindReceiver(sequence_number=2, system_id="acme", password="pw", address_range="^316"),
    BindTransceiver(sequence_number=3, system_id="acme", password="pw", interface_version=0x34, addr_npi=1),
    BindTransmitterResp(sequence_number=1, system_id="SMSC", sc_interface_version=0x34),
    BindReceiverResp(sequence_number=2, command_status=S.ESME_RINVPASWD),
    BindTransceiverResp(sequence_number=3, system_id="SMSC", extra_tlvs=((0x1400, b"v"),)),
    Unbind(sequence_number=4),
    UnbindResp(sequence_number=4),
    EnquireLink(sequence_number=0x7FFFFFFF),
    EnquireLinkResp(sequence_number=0x7FFFFFFF),
    GenericNack(sequence_number=9, command_status=S.ESME_RINVCMDID),
    SubmitSm(
        sequence_number=10,
        service_type="CMT",
        source_addr_ton=5,
        source_addr="ACME",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="31612345678",
        esm_class=0x40,
        registered_delivery=0x11,
        validity_period="000007000000000R",
        data_coding=8,
        short_message=udh_concat(7, 2, 1) + "hé".encode("utf-16-be"),
        user_message_reference=42,
        sar_msg_ref_num=0xBEEF,
        sar_total_segments=2,
        sar_segment_seqnum=1,
        extra_tlvs=((0x1401, b"\x00\x01"), (0x1401, b"dup")),
    ),
    SubmitSmResp(sequence_number=10, message_id="0e999f21"),
    SubmitSmResp(sequence_number=11, command_status=S.ESME_RTHROTTLED),
    DeliverSm(
        sequence_number=12,
        source_addr="31612345678",
        destination_addr="ACME",
        esm_class=0x04,
        short_message=RECEIPT_TEXT,
        receipted_message_id="1001",
        message_state=2,
        network_error_code=NetworkErrorCode(3, 0),
        extra_tlvs=((0x1418, b"\x00\x00\x07l"),),
    ),
    DeliverSm(sequence_number=13, short_message=b"", message_payload=b"x" * 1000),
    DeliverSmResp(sequence_number=12),
]


def frame(
    command_id: int, body: bytes = b"", *, seq: int = 5, status: int = 0, length: int | None = None
) -> bytes:
    length = 16 + len(body) if length is None else length
    return struct.pack(">IIII", length, command_id, status, seq) + body


def test_samples_cover_every_pdu_type() -> None:
    assert {type(p) for p in SAMPLES} == set(PDU_TYPES)


@pytest.mark.parametrize("pdu_type", PDU_TYPES, ids=lambda t: t.__name__)
def test_field_tables_match_dataclass_fields(pdu_type: Any) -> None:
    names = [f.name for f in dataclasses.fields(pdu_type)]
    expected = ["sequence_number", "command_status"] + (["extra_tlvs"] if pdu_type.HAS_BODY else [])
    expected += [name for name, *_ in pdu_type.BODY] + [name for name, *_ in pdu_type.TLVS]
    assert sorted(names) == sorted(expected)


@pytest.mark.parametrize("pdu", SAMPLES, ids=lambda p: type(p).__name__)
def test_round_trip(pdu: Pdu) -> None:
    wire = encode(pdu)
    assert struct.unpack_from(">IIII", wire) == (
        len(wire),
        pdu.command_id,
        pdu.command_status,
        pdu.sequence_number,
    )
    assert decode(wire) == pdu
    assert encode(decode(wire)) == wire


def test_command_status_values_follow_smpp_34() -> None:
    expected = {
        "ESME_ROK": 0x00, "ESME_RINVMSGLEN": 0x01, "ESME_RINVCMDLEN": 0x02, "ESME_RINVCMDID": 0x03,
        "ESME_RINVBNDSTS": 0x04, "ESME_RALYBND": 0x05, "ESME_RSYSERR": 0x08, "ESME_RINVSRCADR": 0x0A,
        "ESME_RINVDSTADR": 0x0B, "ESME_RINVMSGID": 0x0C, "ESME_RBINDFAIL": 0x0D, "ESME_RINVPASWD": 0x0E,
        "ESME_RINVSYSID": 0x0F, "ESME_RMSGQFUL": 0x14, "ESME_RSUBMITFAIL": 0x45, "ESME_RTHROTTLED": 0x58,
        "ESME_RINVEXPIRY": 0x62, "ESME_RX_T_APPN": 0x64, "ESME_RX_P_APPN": 0x65, "ESME_RX_R_APPN": 0x66,
        "ESME_RINVOPTPARSTREAM": 0xC0, "ESME_RINVPARLEN": 0xC2, "ESME_RUNKNOWNERR": 0xFF,
    }  # fmt: skip
    assert {name: CommandStatus[name].value for name in expected} == expected
    assert (Tag.RECEIPTED_MESSAGE_ID, Tag.MESSAGE_STATE, Tag.NETWORK_ERROR_CODE) == (0x001E, 0x0427, 0x0423)
    assert (Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM) == (0x020C, 0x020E, 0x020F)
    assert (Tag.MESSAGE_PAYLOAD, Tag.USER_MESSAGE_REFERENCE) == (0x0424, 0x0204)


# --- captured / hand-written wire bytes ---------------------------------------------------------


def test_decode_bind_transmitter_example() -> None:
    # The bind_transmitter example of the SMPP Wikipedia article (also used by node-smpp's tests).
    wire = bytes.fromhex(
        "0000002F000000020000000000000001534D50503354455354007365637265743038005355424D4954310000010100"
    )
    assert decode(wire) == BindTransmitter(
        sequence_number=1, system_id="SMPP3TEST", password="secret08", system_type="SUBMIT1",
        interface_version=0, addr_ton=1, addr_npi=1, address_range="",
    )  # fmt: skip
    assert encode(decode(wire)) == wire


def test_encode_submit_sm_matches_other_implementation_bytes() -> None:
    # Bytes produced by node-smpp (larvitsmpp) for the same submit_sm.
    pdu = SubmitSm(sequence_number=12, source_addr="46701113311", destination_addr="46709771337",
                   data_coding=1, short_message=b"Hello world")  # fmt: skip
    assert encode(pdu).hex() == (
        "0000004200000004000000000000000c00000034363730313131333331310000003436373039373731333337"
        "000000000000000001000b48656c6c6f20776f726c64"
    )


def test_decode_captured_receipt_with_vendor_tlvs() -> None:
    # A deliver_sm receipt captured from an SMSC: text plus network_error_code, message_state,
    # receipted_message_id and three vendor-specific TLVs (0x1418, 0x1454, 0x1416).
    wire = bytes.fromhex(
        "000000e9000000050000000002a82e8600010134363730393737313333370000003436373031313133333131000400"
        "000000000000007569643a313535303430363231323432313433353835207375623a30303120646c7672643a303031"
        "207375626d697420646174653a3135303430363233323420646f6e6520646174653a31353034303632333234207374"
        "61743a44454c49565244206572723a3030303020746578743a20206261666604230003030000042700010200"
        "1e001331353530343036323132343231343335383500141800040000076c145400040000000114160006323430303800"
    )
    pdu = decode(wire)
    assert isinstance(pdu, DeliverSm)
    assert (pdu.sequence_number, pdu.source_addr, pdu.destination_addr, pdu.esm_class) == (
        44576390,
        "46709771337",
        "46701113311",
        4,
    )
    assert (pdu.receipted_message_id, pdu.message_state) == ("155040621242143585", 2)
    assert pdu.network_error_code == NetworkErrorCode(network_type=3, error_code=0)
    assert pdu.extra_tlvs == (
        (0x1418, b"\x00\x00\x07l"),
        (0x1454, b"\x00\x00\x00\x01"),
        (0x1416, b"24008\x00"),
    )
    assert pdu.short_message.startswith(b"id:155040621242143585 sub:001")
    assert decode(encode(pdu)) == pdu  # typed TLVs are re-encoded first, the raw ones after them


def test_decode_tolerates_nul_padding_after_short_message() -> None:
    body = "0001003436373031313333313131000101343637303937373133333700000000000000000100047465737400"
    pdu = decode(frame(CommandId.SUBMIT_SM, bytes.fromhex(body), seq=2))
    assert isinstance(pdu, SubmitSm)
    assert (pdu.short_message, pdu.destination_addr) == (b"test", "46709771337")


def test_error_responses_have_no_body_and_decode_without_one() -> None:
    assert encode(SubmitSmResp(sequence_number=1, command_status=S.ESME_RTHROTTLED)) == frame(
        CommandId.SUBMIT_SM_RESP, seq=1, status=0x58
    )
    assert decode(frame(CommandId.DELIVER_SM_RESP, seq=3)) == DeliverSmResp(sequence_number=3)
    assert encode(EnquireLink(sequence_number=1)).hex() == "00000010000000150000000000000001"
    nack = decode(bytes.fromhex("00000010800000000000000300000007"))
    assert nack == GenericNack(sequence_number=7, command_status=S.ESME_RINVCMDID)


# --- malformed input ----------------------------------------------------------------------------


SEVEN_DAYS = "000007000000000R"


def _submit_body(**changes: Any) -> bytes:
    return encode(SubmitSm(sequence_number=5, source_addr="ACME", destination_addr="316", **changes))[16:]


def _with_tlv(tag: int, value: bytes) -> bytes:
    return _submit_body() + struct.pack(">HH", tag, len(value)) + value


C = CommandId
BAD_VALIDITY = _submit_body(validity_period=SEVEN_DAYS).replace(SEVEN_DAYS.encode(), b"7d")
MALFORMED = [
    pytest.param(b"", S.ESME_RINVCMDLEN, 0, id="empty"),
    pytest.param(bytes(15), S.ESME_RINVCMDLEN, 0, id="short header"),
    pytest.param(frame(C.ENQUIRE_LINK, length=17), S.ESME_RINVCMDLEN, 5, id="length above frame"),
    pytest.param(frame(C.ENQUIRE_LINK, b"\0", length=16), S.ESME_RINVCMDLEN, 5, id="length below frame"),
    pytest.param(frame(0x0BADF00D), S.ESME_RINVCMDID, 5, id="unknown command"),
    pytest.param(frame(0x00000003, b"1\0\0\0\0"), S.ESME_RINVCMDID, 5, id="unsupported query_sm"),
    pytest.param(frame(C.ENQUIRE_LINK, b"\0\0\0\0"), S.ESME_RINVCMDLEN, 5, id="body on enquire_link"),
    pytest.param(
        frame(C.BIND_TRANSCEIVER, b"x" * 16 + b"\0pw\0\0\x34\0\0\0"), S.ESME_RINVSYSID, 5, id="long system_id"
    ),
    pytest.param(
        frame(C.BIND_TRANSMITTER, b"id\0" + b"p" * 9 + b"\0\0\x34\0\0\0"), S.ESME_RINVPASWD, 5, id="long pwd"
    ),
    pytest.param(frame(C.BIND_RECEIVER, b"id\0pw\0\0\x34"), S.ESME_RINVCMDLEN, 5, id="truncated bind"),
    pytest.param(
        frame(C.SUBMIT_SM, b"\0\0\0" + b"1" * 21 + bytes(31)), S.ESME_RINVSRCADR, 5, id="long source_addr"
    ),
    pytest.param(frame(C.SUBMIT_SM, _submit_body()[:12]), S.ESME_RINVCMDLEN, 5, id="truncated submit_sm"),
    pytest.param(
        frame(C.SUBMIT_SM, _submit_body(short_message=b"abc")[:-1]), S.ESME_RINVMSGLEN, 5, id="sm_length"
    ),
    pytest.param(
        frame(C.SUBMIT_SM, _submit_body()[:-1] + b"\xff" + bytes(255)), S.ESME_RINVMSGLEN, 5, id="sm_len 255"
    ),
    pytest.param(frame(C.SUBMIT_SM, BAD_VALIDITY), S.ESME_RINVEXPIRY, 5, id="bad validity_period"),
    pytest.param(
        frame(C.SUBMIT_SM, _submit_body() + b"\x02\x04"), S.ESME_RINVOPTPARSTREAM, 5, id="stray octets"
    ),
    pytest.param(
        frame(C.SUBMIT_SM, _with_tlv(0x0204, b"\0\1")[:-1]), S.ESME_RINVOPTPARSTREAM, 5, id="TLV past end"
    ),
    pytest.param(
        frame(C.SUBMIT_SM, _with_tlv(0x0204, b"\x01")), S.ESME_RINVPARLEN, 5, id="u16 TLV of 1 octet"
    ),
    pytest.param(
        frame(C.SUBMIT_SM, _with_tlv(0x020E, b"\2") + b"\x02\x0e\0\1\3"),
        S.ESME_RINVOPTPARSTREAM,
        5,
        id="TLV twice",
    ),
    pytest.param(
        frame(C.DELIVER_SM, _with_tlv(0x0427, b"\0\2")), S.ESME_RINVPARLEN, 5, id="message_state 2 octets"
    ),
    pytest.param(
        frame(C.DELIVER_SM, _with_tlv(0x001E, b"12\x003\0")), S.ESME_RINVOPTPARAMVAL, 5, id="NUL in id TLV"
    ),
    pytest.param(frame(C.SUBMIT_SM_RESP, b"1" * 65 + b"\0"), S.ESME_RINVMSGID, 5, id="message_id too long"),
]


@pytest.mark.parametrize(("wire", "status", "seq"), MALFORMED)
def test_malformed_input_raises_pdu_error_with_status(wire: bytes, status: int, seq: int) -> None:
    with pytest.raises(PduError) as info:
        decode(wire)
    assert (info.value.command_status, info.value.sequence_number) == (status, seq)
    assert isinstance(info.value, ValueError)
    if seq:
        assert info.value.command_id == struct.unpack_from(">I", wire, 4)[0]


ENCODE_ERRORS = [
    (SubmitSm(sequence_number=1, destination_addr="1" * 21), S.ESME_RINVDSTADR),
    (SubmitSm(sequence_number=1, source_addr="ü€"), S.ESME_RINVSRCADR),
    (SubmitSm(sequence_number=1, source_addr="a\0b"), S.ESME_RINVSRCADR),
    (SubmitSm(sequence_number=1, short_message=bytes(255)), S.ESME_RINVMSGLEN),
    (SubmitSm(sequence_number=1, validity_period="7d"), S.ESME_RINVEXPIRY),
    (SubmitSm(sequence_number=1, esm_class=256), S.ESME_RINVESMCLASS),
    (SubmitSm(sequence_number=1, sar_msg_ref_num=0x10000), S.ESME_RINVOPTPARAMVAL),
    (SubmitSm(sequence_number=1, message_payload=bytes(0x10000)), S.ESME_RINVPARLEN),
    (SubmitSm(sequence_number=1, extra_tlvs=((0x020C, b"\0\1"),)), S.ESME_RINVOPTPARSTREAM),
    (SubmitSm(sequence_number=1, extra_tlvs=((0x10000, b""),)), S.ESME_RINVOPTPARSTREAM),
    (DeliverSm(sequence_number=1, receipted_message_id="9" * 65), S.ESME_RINVOPTPARAMVAL),
    (BindTransceiver(sequence_number=1, password="123456789"), S.ESME_RINVPASWD),
    (EnquireLink(sequence_number=2**32), S.ESME_RSYSERR),
]


@pytest.mark.parametrize(("pdu", "status"), ENCODE_ERRORS)
def test_encode_rejects_what_the_format_cannot_carry(pdu: Pdu, status: int) -> None:
    with pytest.raises(PduError) as info:
        encode(pdu)
    assert info.value.command_status == status
    assert info.value.command_id == pdu.command_id


# --- framing ------------------------------------------------------------------------------------

STREAM_FRAMES = [encode(p) for p in SAMPLES]
STREAM = b"".join(STREAM_FRAMES)


def test_reader_byte_by_byte() -> None:
    reader = PduReader()
    frames = [f for i in range(len(STREAM)) for f in reader.feed(STREAM[i : i + 1])]
    assert frames == STREAM_FRAMES
    assert reader.buffered == 0


@pytest.mark.parametrize("seed", range(20))
def test_reader_random_chunks(seed: int) -> None:
    rng = random.Random(seed)
    reader, frames, pos = PduReader(), [], 0
    while pos < len(STREAM):
        size = rng.randint(0, 200)
        frames += reader.feed(STREAM[pos : pos + size])
        pos += size
    assert frames == STREAM_FRAMES


@given(st.lists(st.integers(0, len(STREAM)), max_size=30))
def test_reader_any_split_keeps_frames_and_bounds_buffer(cuts: list[int]) -> None:
    reader, frames = PduReader(max_length=2048), []
    points = [0, *sorted(cuts), len(STREAM)]
    for start, end in itertools.pairwise(points):
        frames += reader.feed(STREAM[start:end])
        assert reader.buffered < 2048
    assert frames == STREAM_FRAMES


@pytest.mark.parametrize(
    ("header", "seq"),
    [(struct.pack(">I", 15), 0), (frame(CommandId.SUBMIT_SM, seq=77, length=MAX_PDU_LENGTH + 1), 77)],
)
def test_reader_rejects_bad_command_length(header: bytes, seq: int) -> None:
    reader = PduReader()
    with pytest.raises(PduError) as info:
        reader.feed(header)
    assert (info.value.command_status, info.value.sequence_number) == (S.ESME_RINVCMDLEN, seq)
    with pytest.raises(PduError):
        reader.feed(STREAM)  # the stream cannot be resynchronised


def test_reader_returns_frames_before_a_bad_header_then_raises() -> None:
    reader = PduReader(max_length=1024)
    good = encode(EnquireLink(sequence_number=1))
    assert reader.feed(good + frame(CommandId.SUBMIT_SM, seq=9, length=5000)) == [good]
    assert reader.error is not None
    assert reader.buffered == 0
    with pytest.raises(PduError) as info:
        reader.feed(b"")
    assert info.value.sequence_number == 9


# --- hypothesis: codec properties ---------------------------------------------------------------


def latin1(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=max_size)


u8, u16 = st.integers(0, 0xFF), st.integers(0, 0xFFFF)
smpp_times = st.sampled_from(["", "000007000000000R", "261127120000004+"]) | latin1(16).filter(
    lambda s: len(s) == 16
)
extra_tlvs = st.lists(
    st.tuples(u16.filter(lambda tag: tag not in set(Tag)), st.binary(max_size=40)), max_size=3
).map(tuple)
SHORT_MESSAGE_FIELDS: dict[str, st.SearchStrategy[Any]] = dict(
    sequence_number=st.integers(0, 0xFFFFFFFF), command_status=st.integers(0, 0xFFFFFFFF),
    service_type=latin1(5), source_addr_ton=u8, source_addr_npi=u8, source_addr=latin1(20),
    dest_addr_ton=u8, dest_addr_npi=u8, destination_addr=latin1(20), esm_class=u8, protocol_id=u8,
    priority_flag=u8, schedule_delivery_time=smpp_times, validity_period=smpp_times,
    registered_delivery=u8, replace_if_present_flag=u8, data_coding=u8, sm_default_msg_id=u8,
    short_message=st.binary(max_size=254), user_message_reference=st.none() | u16,
    sar_msg_ref_num=st.none() | u16, sar_total_segments=st.none() | u8,
    sar_segment_seqnum=st.none() | u8, message_payload=st.none() | st.binary(max_size=600),
    extra_tlvs=extra_tlvs,
)  # fmt: skip
submit_sms = st.builds(SubmitSm, **SHORT_MESSAGE_FIELDS)
deliver_sms = st.builds(
    DeliverSm, **SHORT_MESSAGE_FIELDS, receipted_message_id=st.none() | latin1(64),
    message_state=st.none() | u8, network_error_code=st.none() | st.builds(NetworkErrorCode, u8, u16),
)  # fmt: skip


@given(submit_sms | deliver_sms)
def test_round_trip_property(pdu: SubmitSm | DeliverSm) -> None:
    assert decode(encode(pdu)) == pdu


PLAIN_SUBMIT = SubmitSm(
    sequence_number=0, source_addr="Partner", destination_addr="4915112345678", dest_addr_ton=1,
    validity_period="000001000000000R", registered_delivery=1, short_message=b"Your code",
)  # fmt: skip
# Each field at the edge of what it may carry, and just past it.
FITS_AND_DOES_NOT: list[tuple[str, Any, Any]] = [
    ("sequence_number", 0xFFFFFFFF, 0x100000000), ("sequence_number", 0, -1),
    ("command_status", 0xFFFFFFFF, -1),
    ("service_type", "x" * 5, "x" * 6), ("source_addr", "x" * 20, "x" * 21),
    ("destination_addr", "\xff" * 20, "x" * 21), ("destination_addr", "49151", "491\x0051"),
    ("source_addr", "\xe9", "\u0101"), ("source_addr_ton", 255, 256), ("dest_addr_npi", 0, -1),
    ("esm_class", 255, 256), ("sm_default_msg_id", 255, 256), ("data_coding", 8, 300),
    ("schedule_delivery_time", "", "x" * 15), ("validity_period", "x" * 16, "x" * 17),
    ("short_message", b"x" * 254, b"x" * 255), ("short_message", b"\0", "text"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "fits", "does_not"), FITS_AND_DOES_NOT)
@pytest.mark.parametrize(
    "base", [PLAIN_SUBMIT, DeliverSm(sequence_number=9, esm_class=4, short_message=b"id:1")]
)
def test_the_plain_encoder_writes_only_what_the_checked_one_writes(
    base: Pdu, name: str, fits: Any, does_not: Any
) -> None:
    plan = encoder_module._PLANS[type(base)]
    fitting = dataclasses.replace(base, **{name: fits})
    assert plan.encode(fitting) == encoder_module._encode_checked(fitting)
    wrong = dataclasses.replace(base, **{name: does_not})
    assert plan.encode(wrong) is None
    with pytest.raises((PduError, TypeError)):
        encoder_module._encode_checked(wrong)


@given(submit_sms | deliver_sms | st.sampled_from(SAMPLES))
def test_the_plain_encoder_writes_what_the_checked_one_does(pdu: Pdu) -> None:
    """Where the plain path writes a frame (or leaves it to the checked path: optional or extra
    TLVs, an error answer's missing body), the frame is the checked path's."""
    plain = encoder_module._PLANS[type(pdu)].encode(pdu)
    assert plain is None or plain == encoder_module._encode_checked(pdu)


def test_the_plain_encoder_writes_what_the_gateway_sends() -> None:
    """A message's submit_sm and a receipt's deliver_sm_resp take the plain path."""
    for pdu in (
        PLAIN_SUBMIT,
        DeliverSmResp(sequence_number=7),
        SubmitSmResp(sequence_number=3, message_id="ab"),
    ):
        assert encoder_module._PLANS[type(pdu)].encode(pdu) == encoder_module._encode_checked(pdu)


@given(st.binary(max_size=400))
def test_decode_arbitrary_bytes_raises_only_pdu_error(data: bytes) -> None:
    with contextlib.suppress(PduError):
        decode(data)


@given(
    st.sampled_from([int(c) for c in CommandId]) | st.integers(0, 0xFFFFFFFF), st.binary(max_size=300), u16
)
def test_whatever_decodes_re_encodes_to_the_same_pdu(command_id: int, body: bytes, seq: int) -> None:
    try:
        pdu = decode(frame(command_id, body, seq=seq))
    except PduError as exc:
        error = exc
    else:
        assert decode(encode(pdu)) == pdu
        return
    assert error.sequence_number == seq


@given(st.sampled_from(STREAM_FRAMES), st.data())
def test_decode_mutated_frames_raises_only_pdu_error(wire: bytes, data: st.DataObject) -> None:
    mutated = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 4))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(u8)
    with contextlib.suppress(PduError):
        decode(bytes(mutated))


# --- SMPP time and UDH helpers ------------------------------------------------------------------


def test_smpp_time_helpers() -> None:
    assert relative_validity(90) == "000000000130000R"
    assert relative_validity(7 * 86400) == "000007000000000R"
    assert parse_smpp_time("000007000000000R") == timedelta(days=7)
    assert parse_smpp_time("010203040506000R") == timedelta(days=365 + 60 + 3, hours=4, minutes=5, seconds=6)
    assert parse_smpp_time("") is None
    assert parse_smpp_time("120410101112304+") == datetime(2012, 4, 10, 9, 11, 12, 300000, tzinfo=UTC)
    assert parse_smpp_time("120410101112308-") == datetime(2012, 4, 10, 12, 11, 12, 300000, tzinfo=UTC)
    moment = datetime(2026, 11, 27, 15, 4, 5, 700000, tzinfo=timezone(timedelta(hours=1)))
    assert absolute_time(moment) == "261127140405700+"
    assert parse_smpp_time(absolute_time(moment)) == moment
    for bad in (
        "12041010111230+",
        "120410101112349+",
        "121310101112300+",
        "12041010111230x+",
        "१२०४१०१०१११२३००+",
    ):
        with pytest.raises(ValueError, match=r"."):
            parse_smpp_time(bad)
    for seconds in (0, -1, 100 * 86400):
        with pytest.raises(ValueError, match="relative validity"):
            relative_validity(seconds)


@given(st.integers(1, 100 * 86400 - 1))
def test_relative_validity_round_trip(seconds: int) -> None:
    assert parse_smpp_time(relative_validity(seconds)) == timedelta(seconds=seconds)


def test_udh_concat() -> None:
    assert udh_concat(0x12, 3, 2) == bytes.fromhex("050003120302")
    assert parse_udh_concat(bytes.fromhex("050003120302") + b"text") == ConcatInfo(0x12, 3, 2, 6)
    assert parse_udh_concat(bytes.fromhex("0608041234030102") + b"x") == ConcatInfo(0x1234, 3, 1, 7)
    # another element (0x0A text formatting) before the concatenation element
    assert parse_udh_concat(bytes.fromhex("0a0a0300010200030a0201")) == ConcatInfo(0x0A, 2, 1, 11)
    for bad in (
        b"",
        b"\x05\x00\x03\x12",
        bytes.fromhex("050003120304"),
        bytes.fromhex("050003120300"),
        b"\x00x",
    ):
        assert parse_udh_concat(bad) is None
    for args in ((256, 1, 1), (0, 0, 0), (0, 2, 3), (-1, 1, 1)):
        with pytest.raises(ValueError, match="concatenation"):
            udh_concat(*args)


@given(
    u8,
    st.integers(1, 255).flatmap(lambda t: st.tuples(st.just(t), st.integers(1, t))),
    st.binary(max_size=20),
)
def test_udh_round_trip(ref: int, total_seq: tuple[int, int], text: bytes) -> None:
    info = parse_udh_concat(udh_concat(ref, *total_seq) + text)
    assert info == ConcatInfo(ref, *total_seq, 6)


# --- interoperability with smpp.pdu3 (Jasmin's codec, an independent implementation) -----------


@pytest.fixture(scope="module")
def jasmin() -> SimpleNamespace:
    from smpp.pdu import constants, operations, pdu_encoding, pdu_types

    return SimpleNamespace(enc=pdu_encoding.PDUEncoder(), op=operations, t=pdu_types, c=constants)


def _theirs(j: SimpleNamespace, wire: bytes) -> Any:
    stream = io.BytesIO(wire)
    pdu = j.enc.decode(stream)
    assert stream.tell() == len(wire)
    return pdu


def _wire_value(j: SimpleNamespace, name: str, value: Any) -> Any:
    """A smpp.pdu3 field value as the plain value our dataclasses hold."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if value is None or isinstance(value, int | str):
        return "" if value is None else value
    if name in ("schedule_delivery_time", "validity_period"):
        return j.enc.DefaultRequiredParamEncoders[name].encode(value)[:-1].decode()
    if name in j.enc.DefaultRequiredParamEncoders:  # enums and flag tuples: their own encoder
        return j.enc.DefaultRequiredParamEncoders[name].encode(value)[0]
    return getattr(j.c, f"{name}_name_map")[value.name]


INTEROP = [p for p in SAMPLES if isinstance(p, SubmitSm | SubmitSmResp | BindTransceiver | EnquireLink)] + [
    SubmitSm(sequence_number=20, source_addr="ACME", source_addr_ton=5, destination_addr="447700900000",
             dest_addr_ton=1, dest_addr_npi=1, priority_flag=1, registered_delivery=1, data_coding=8,
             validity_period="261127120000004+", short_message="hé".encode("utf-16-be")),
    DeliverSm(sequence_number=21, source_addr="447700900000", destination_addr="ACME", esm_class=0x04,
              short_message=RECEIPT_TEXT, receipted_message_id="1001", message_state=5,
              network_error_code=NetworkErrorCode(3, 27)),
]  # fmt: skip


@pytest.mark.parametrize("pdu", INTEROP, ids=lambda p: type(p).__name__)
def test_ours_decoded_by_smpp_pdu3(jasmin: SimpleNamespace, pdu: Pdu) -> None:
    theirs = _theirs(jasmin, encode(pdu))
    assert theirs.id.name.upper() == pdu.command_id.name
    assert (theirs.seqNum, jasmin.c.command_status_name_map[theirs.status.name]) == (
        pdu.sequence_number,
        pdu.command_status,
    )
    for name, value in theirs.params.items():
        if name == "network_error_code":
            assert value == bytes((pdu.network_error_code.network_type,)) + struct.pack(
                ">H", pdu.network_error_code.error_code
            )  # type: ignore[union-attr]
        elif name == "short_message" or name == "message_payload":
            assert value == getattr(pdu, name)
        else:
            assert _wire_value(jasmin, name, value) == getattr(pdu, name), name
    typed = {name for name, *_ in pdu.TLVS if getattr(pdu, name) is not None}
    assert typed <= set(theirs.params)  # the vendor TLVs in extra_tlvs are not theirs to keep


def _their_samples(j: SimpleNamespace) -> list[tuple[Any, Pdu]]:
    t, op = j.t, j.op
    submit = op.SubmitSM(
        seqNum=31,
        service_type="",
        source_addr_ton=t.AddrTon.ALPHANUMERIC,
        source_addr_npi=t.AddrNpi.UNKNOWN,
        source_addr="ACME",
        dest_addr_ton=t.AddrTon.INTERNATIONAL,
        dest_addr_npi=t.AddrNpi.ISDN,
        destination_addr="31612345678",
        esm_class=t.EsmClass(
            t.EsmClassMode.DEFAULT, t.EsmClassType.DEFAULT, [t.EsmClassGsmFeatures.UDHI_INDICATOR_SET]
        ),
        protocol_id=0,
        priority_flag=t.PriorityFlag.LEVEL_0,
        schedule_delivery_time=None,
        validity_period=None,
        registered_delivery=t.RegisteredDelivery(t.RegisteredDeliveryReceipt.SMSC_DELIVERY_RECEIPT_REQUESTED),
        replace_if_present_flag=t.ReplaceIfPresentFlag.DO_NOT_REPLACE,
        data_coding=t.DataCoding(),
        sm_default_msg_id=0,
        short_message=udh_concat(1, 2, 1) + b"hello",
        sar_msg_ref_num=258,
        sar_total_segments=2,
        sar_segment_seqnum=1,
        user_message_reference=7,
    )
    ours_submit = SubmitSm(
        sequence_number=31,
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr="ACME",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="31612345678",
        esm_class=0x40,
        registered_delivery=1,
        short_message=udh_concat(1, 2, 1) + b"hello",
        sar_msg_ref_num=258,
        sar_total_segments=2,
        sar_segment_seqnum=1,
        user_message_reference=7,
    )
    receipt = op.DeliverSM(
        seqNum=32,
        service_type="",
        source_addr_ton=t.AddrTon.INTERNATIONAL,
        source_addr_npi=t.AddrNpi.ISDN,
        source_addr="31612345678",
        dest_addr_ton=t.AddrTon.UNKNOWN,
        dest_addr_npi=t.AddrNpi.UNKNOWN,
        destination_addr="ACME",
        esm_class=t.EsmClass(t.EsmClassMode.DEFAULT, t.EsmClassType.SMSC_DELIVERY_RECEIPT),
        protocol_id=0,
        priority_flag=t.PriorityFlag.LEVEL_0,
        schedule_delivery_time=None,
        validity_period=None,
        registered_delivery=t.RegisteredDelivery(
            t.RegisteredDeliveryReceipt.NO_SMSC_DELIVERY_RECEIPT_REQUESTED
        ),
        replace_if_present_flag=t.ReplaceIfPresentFlag.DO_NOT_REPLACE,
        data_coding=t.DataCoding(),
        sm_default_msg_id=0,
        short_message=RECEIPT_TEXT,
        receipted_message_id="1001",
        message_state=t.MessageState.UNDELIVERABLE,
        network_error_code=b"\x03\x00\x1b",
    )
    ours_receipt = DeliverSm(
        sequence_number=32,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="31612345678",
        destination_addr="ACME",
        esm_class=4,
        short_message=RECEIPT_TEXT,
        receipted_message_id="1001",
        message_state=5,
        network_error_code=NetworkErrorCode(3, 27),
    )
    bind = op.BindTransceiver(
        seqNum=33,
        system_id="acme",
        password="pw",
        system_type="",
        interface_version=0x34,
        addr_ton=t.AddrTon.UNKNOWN,
        addr_npi=t.AddrNpi.UNKNOWN,
        address_range="",
    )
    return [
        (submit, ours_submit),
        (op.SubmitSMResp(seqNum=31, message_id="0e999f21"),
         SubmitSmResp(sequence_number=31, message_id="0e999f21")),
        (op.SubmitSMResp(seqNum=34, status=t.CommandStatus.ESME_RTHROTTLED),
         SubmitSmResp(sequence_number=34, command_status=S.ESME_RTHROTTLED)),
        (receipt, ours_receipt),
        (bind, BindTransceiver(sequence_number=33, system_id="acme", password="pw")),
        (op.EnquireLink(seqNum=35), EnquireLink(sequence_number=35)),
        (op.GenericNack(seqNum=36, status=t.CommandStatus.ESME_RINVCMDLEN),
         GenericNack(sequence_number=36, command_status=S.ESME_RINVCMDLEN)),
    ]  # fmt: skip


def test_smpp_pdu3_encoded_decoded_by_ours(jasmin: SimpleNamespace) -> None:
    for theirs, expected in _their_samples(jasmin):
        assert decode(jasmin.enc.encode(theirs)) == expected


@pytest.mark.parametrize(
    "value", ["000007000000000R", "261127120000004+", "120410101112308-", "491231235959948+"]
)
# (they read YY 69-99 as 19YY, strptime style; we read every YY as 20YY, as SMPP times are never past)
def test_smpp_time_agrees_with_smpp_pdu3(value: str) -> None:
    from smpp.pdu import smpp_time

    theirs, ours = smpp_time.parse(value), parse_smpp_time(value)
    if isinstance(ours, timedelta):
        assert (theirs.days, theirs.hours, theirs.minutes, theirs.seconds) == (7, 0, 0, 0)
        assert ours == timedelta(days=7)
    else:
        assert theirs == ours
