"""SMPP 3.4 PDU codec: typed PDUs and ``encode``/``decode`` (framing, times and UDH beside it).

Pure: no I/O, no clock. A frame is one whole PDU: the 16-octet header (command_length, command_id,
command_status, sequence_number, all big-endian) followed by the body. Malformed input raises
:class:`PduError`, which carries the ``command_status`` a ``generic_nack`` (or the command's
``*_resp``) should report. ``encode`` raises it too, e.g. ``ESME_RINVDSTADR`` for a 30-digit
destination, so the caller can classify the failure like the carrier's own answer.

C-Octet-Strings are ``str`` (Latin-1, so every octet round-trips); their maximum sizes below include
the terminating NUL, as in the specification. TLVs the PDU types by name are fields; any other TLV is
kept in ``extra_tlvs`` as a raw ``(tag, value)`` pair and written back after the typed ones.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, NamedTuple

from partner_gateway.channels.smpp.codec.constants import (
    HEADER_LENGTH,
    INTERFACE_VERSION_34,
    MAX_SHORT_MESSAGE,
    CommandId,
    CommandStatus,
    Tag,
)


class NetworkErrorCode(NamedTuple):
    """The 3-octet network_error_code TLV: network type (3 = GSM, 7 = SMPP, ...) and its error."""

    network_type: int
    error_code: int


class PduError(ValueError):
    """Malformed PDU (or a value ``encode`` cannot write); ``command_status`` is what to report."""

    def __init__(
        self,
        command_status: int,
        sequence_number: int = 0,
        detail: str = "",
        *,
        command_id: int | None = None,
    ) -> None:
        name = getattr(_status(command_status), "name", f"0x{command_status:08x}")
        super().__init__(f"{name} (sequence_number={sequence_number}): {detail}")
        self.command_status = command_status
        self.sequence_number = sequence_number
        self.command_id = command_id
        self.detail = detail


Tlvs = tuple[tuple[int, bytes], ...]
_S = CommandStatus
# Body fields: (name, kind, max octets incl. NUL, status reported when invalid).
# kinds: "c" C-Octet-String, "t" SMPP time (empty or 16 chars), "u8" integer, "sm" sm_length + short_message.
_F = tuple[str, str, int, int]
# Typed TLVs: (name, tag, kind); kinds "u8", "u16", "c" (C-Octet-String <= 65), "b" (octets), "ne".
_T = tuple[str, int, str]

_BIND: tuple[_F, ...] = (
    ("system_id", "c", 16, _S.ESME_RINVSYSID),
    ("password", "c", 9, _S.ESME_RINVPASWD),
    ("system_type", "c", 13, _S.ESME_RINVSYSTYP),
    ("interface_version", "u8", 1, _S.ESME_RINVPARLEN),
    ("addr_ton", "u8", 1, _S.ESME_RINVSRCTON),
    ("addr_npi", "u8", 1, _S.ESME_RINVSRCNPI),
    ("address_range", "c", 41, _S.ESME_RINVPARLEN),
)
_SM: tuple[_F, ...] = (
    ("service_type", "c", 6, _S.ESME_RINVSERTYP),
    ("source_addr_ton", "u8", 1, _S.ESME_RINVSRCTON),
    ("source_addr_npi", "u8", 1, _S.ESME_RINVSRCNPI),
    ("source_addr", "c", 21, _S.ESME_RINVSRCADR),
    ("dest_addr_ton", "u8", 1, _S.ESME_RINVDSTTON),
    ("dest_addr_npi", "u8", 1, _S.ESME_RINVDSTNPI),
    ("destination_addr", "c", 21, _S.ESME_RINVDSTADR),
    ("esm_class", "u8", 1, _S.ESME_RINVESMCLASS),
    ("protocol_id", "u8", 1, _S.ESME_RINVPARLEN),
    ("priority_flag", "u8", 1, _S.ESME_RINVPRTFLG),
    ("schedule_delivery_time", "t", 17, _S.ESME_RINVSCHED),
    ("validity_period", "t", 17, _S.ESME_RINVEXPIRY),
    ("registered_delivery", "u8", 1, _S.ESME_RINVREGDLVFLG),
    ("replace_if_present_flag", "u8", 1, _S.ESME_RINVREPFLAG),
    ("data_coding", "u8", 1, _S.ESME_RINVPARLEN),
    ("sm_default_msg_id", "u8", 1, _S.ESME_RINVDFTMSGID),
    ("short_message", "sm", MAX_SHORT_MESSAGE + 1, _S.ESME_RINVMSGLEN),
)
_MESSAGE_ID: tuple[_F, ...] = (("message_id", "c", 65, _S.ESME_RINVMSGID),)
_SM_TLVS: tuple[_T, ...] = (
    ("user_message_reference", Tag.USER_MESSAGE_REFERENCE, "u16"),
    ("sar_msg_ref_num", Tag.SAR_MSG_REF_NUM, "u16"),
    ("sar_total_segments", Tag.SAR_TOTAL_SEGMENTS, "u8"),
    ("sar_segment_seqnum", Tag.SAR_SEGMENT_SEQNUM, "u8"),
    ("message_payload", Tag.MESSAGE_PAYLOAD, "b"),
)
_RECEIPT_TLVS: tuple[_T, ...] = (
    ("receipted_message_id", Tag.RECEIPTED_MESSAGE_ID, "c"),
    ("message_state", Tag.MESSAGE_STATE, "u8"),
    ("network_error_code", Tag.NETWORK_ERROR_CODE, "ne"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Header:
    command_id: ClassVar[CommandId]
    BODY: ClassVar[tuple[_F, ...]] = ()
    TLVS: ClassVar[tuple[_T, ...]] = ()
    HAS_BODY: ClassVar[bool] = False  # may carry a body and TLVs (``extra_tlvs``)
    BODY_OPTIONAL: ClassVar[bool] = False  # a response whose body may be absent (e.g. on error)
    sequence_number: int
    command_status: int = CommandStatus.ESME_ROK


@dataclass(frozen=True, slots=True, kw_only=True)
class _Body(_Header):
    HAS_BODY = True
    extra_tlvs: Tlvs = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bind(_Body):
    BODY = _BIND
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _BindResp(_Body):
    BODY = (("system_id", "c", 16, _S.ESME_RINVSYSID),)
    TLVS = (("sc_interface_version", Tag.SC_INTERFACE_VERSION, "u8"),)
    BODY_OPTIONAL = True
    system_id: str = ""
    sc_interface_version: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitter(_Bind):
    command_id = CommandId.BIND_TRANSMITTER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitterResp(_BindResp):
    command_id = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiver(_Bind):
    command_id = CommandId.BIND_RECEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiverResp(_BindResp):
    command_id = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiver(_Bind):
    command_id = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiverResp(_BindResp):
    command_id = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind(_Header):
    command_id = CommandId.UNBIND


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindResp(_Header):
    command_id = CommandId.UNBIND_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLink(_Header):
    command_id = CommandId.ENQUIRE_LINK


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkResp(_Header):
    command_id = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack(_Header):
    command_id = CommandId.GENERIC_NACK


@dataclass(frozen=True, slots=True, kw_only=True)
class _ShortMessage(_Body):
    BODY = _SM
    TLVS = _SM_TLVS
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    user_message_reference: int | None = None
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    message_payload: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(_ShortMessage):
    command_id = CommandId.SUBMIT_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(_ShortMessage):
    command_id = CommandId.DELIVER_SM
    TLVS = _SM_TLVS + _RECEIPT_TLVS
    receipted_message_id: str | None = None
    message_state: int | None = None
    network_error_code: NetworkErrorCode | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageIdResp(_Body):
    BODY = _MESSAGE_ID
    BODY_OPTIONAL = True
    message_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(_MessageIdResp):
    command_id = CommandId.SUBMIT_SM_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(_MessageIdResp):
    command_id = CommandId.DELIVER_SM_RESP


Pdu = (
    BindTransmitter | BindTransmitterResp | BindReceiver | BindReceiverResp | BindTransceiver
    | BindTransceiverResp | Unbind | UnbindResp | EnquireLink | EnquireLinkResp | GenericNack
    | SubmitSm | SubmitSmResp | DeliverSm | DeliverSmResp
)  # fmt: skip
PDU_TYPES: Final[tuple[type[Pdu], ...]] = (
    BindTransmitter, BindTransmitterResp, BindReceiver, BindReceiverResp, BindTransceiver,
    BindTransceiverResp, Unbind, UnbindResp, EnquireLink, EnquireLinkResp, GenericNack,
    SubmitSm, SubmitSmResp, DeliverSm, DeliverSmResp,
)  # fmt: skip
_BY_ID: Final[dict[int, type[Pdu]]] = {cls.command_id: cls for cls in PDU_TYPES}
_TYPED_TLVS: Final[dict[type[Pdu], dict[int, tuple[str, str]]]] = {
    cls: {tag: (name, kind) for name, tag, kind in cls.TLVS} for cls in PDU_TYPES
}


_COMMAND_STATUSES: Final[dict[int, CommandStatus]] = {int(status): status for status in CommandStatus}


def _status(value: int) -> int:
    """The value as a :class:`CommandStatus` when it is one (nicer reprs), else the plain int."""
    return _COMMAND_STATUSES.get(value, value)


def _cstr(value: str, size: int, status: int, what: str) -> bytes:
    problem = f"{what}: not a Latin-1 C-Octet-String of at most {size - 1} octets"
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise PduError(status, 0, problem) from None
    if b"\0" in raw or len(raw) >= size:
        raise PduError(status, 0, problem)
    return raw + b"\0"


def _int(value: int, width: int, status: int, what: str) -> bytes:
    if not 0 <= value < 1 << (8 * width):
        raise PduError(status, 0, f"{what}: {value} does not fit in {width} octet(s)")
    return value.to_bytes(width, "big")


def _tlv(tag: int, value: bytes, what: str) -> bytes:
    if len(value) > 0xFFFF:
        raise PduError(_S.ESME_RINVPARLEN, 0, f"{what}: {len(value)} octets is too long for a TLV")
    return _int(tag, 2, _S.ESME_RINVOPTPARSTREAM, what) + len(value).to_bytes(2, "big") + value


def _encode_tlv(kind: str, value: Any, what: str) -> bytes:
    bad = _S.ESME_RINVOPTPARAMVAL
    if kind == "u8" or kind == "u16":
        return _int(value, 1 if kind == "u8" else 2, bad, what)
    if kind == "c":
        return _cstr(value, 65, bad, what)
    if kind == "ne":
        return _int(value.network_type, 1, bad, what) + _int(value.error_code, 2, bad, what)
    return bytes(value)


def encode(pdu: Pdu) -> bytes:
    """One whole frame for ``pdu``; raises :class:`PduError` for a value the format cannot carry."""
    frame = _PLANS[type(pdu)].encode(pdu)
    return frame if frame is not None else _encode_checked(pdu)


def _encode_checked(pdu: Pdu) -> bytes:
    """encode, field by field, saying what is wrong with a value the format cannot carry."""
    body = bytearray()
    try:
        for name, kind, size, status in pdu.BODY:
            value = getattr(pdu, name)
            if kind == "u8":
                body += _int(value, 1, status, name)
            elif kind == "sm":
                if len(value) > MAX_SHORT_MESSAGE:
                    raise PduError(status, 0, f"short_message is {len(value)} octets (max 254)")
                body += bytes((len(value),)) + value
            elif kind == "t" and len(value) not in (0, 16):
                raise PduError(status, 0, f"{name}: an SMPP time has 16 characters, got {value!r}")
            else:
                body += _cstr(value, size, status, name)
        if isinstance(pdu, _Body):
            typed = {tag for _, tag, _ in pdu.TLVS}
            for name, tag, kind in pdu.TLVS:
                if (value := getattr(pdu, name)) is not None:
                    body += _tlv(tag, _encode_tlv(kind, value, name), name)
            for tag, raw in pdu.extra_tlvs:
                if tag in typed:
                    raise PduError(
                        _S.ESME_RINVOPTPARSTREAM, 0, f"TLV 0x{tag:04x} is a typed field of this PDU"
                    )
                body += _tlv(tag, bytes(raw), f"TLV 0x{tag:04x}")
            if pdu.BODY_OPTIONAL and pdu.command_status != 0 and body == b"\0":
                body.clear()  # SMPP 3.4 4.1.2/4.4.2: no body is returned with an error status
        length = HEADER_LENGTH + len(body)
        header = struct.pack(">IIII", length, pdu.command_id, pdu.command_status, pdu.sequence_number)
    except struct.error as exc:
        raise PduError(_S.ESME_RSYSERR, 0, f"header out of range: {exc}", command_id=pdu.command_id) from None
    except PduError as exc:
        raise PduError(
            exc.command_status, pdu.sequence_number, exc.detail, command_id=pdu.command_id
        ) from None
    return header + bytes(body)


_TLV_WIDTHS: Final = {"u8": 1, "u16": 2, "ne": 3}


def _decode_tlv(kind: str, raw: bytes, what: str) -> Any:
    width = _TLV_WIDTHS.get(kind)
    if width is not None and len(raw) != width:
        raise PduError(_S.ESME_RINVPARLEN, 0, f"{what}: {len(raw)} octets, expected {width}")
    if kind == "ne":
        return NetworkErrorCode(raw[0], int.from_bytes(raw[1:], "big"))
    if kind == "c":  # tolerate a missing terminator, which some SMSCs omit
        text = raw[:-1] if raw.endswith(b"\0") else raw
        if b"\0" in text or len(text) > 64:
            raise PduError(_S.ESME_RINVOPTPARAMVAL, 0, f"{what}: not a C-Octet-String of at most 64 octets")
        return text.decode("latin-1")
    return raw if width is None else int.from_bytes(raw, "big")


def _decode_fields(cls: type[Pdu], frame: bytes, fields: dict[str, Any]) -> None:
    pos, end = HEADER_LENGTH, len(frame)
    for name, kind, size, status in cls.BODY:
        if pos >= end:
            raise PduError(_S.ESME_RINVCMDLEN, 0, f"body ends before {name}")
        if kind == "u8":
            fields[name], pos = frame[pos], pos + 1
        elif kind == "sm":
            n, pos = frame[pos], pos + 1
            if n > MAX_SHORT_MESSAGE or pos + n > end:
                raise PduError(status, 0, f"sm_length {n} with {end - pos} octets left in the body")
            fields[name], pos = frame[pos : pos + n], pos + n
        else:
            nul = frame.find(b"\0", pos, min(end, pos + size))
            if nul < 0:
                short = end - pos < size
                raise PduError(
                    _S.ESME_RINVCMDLEN if short else status, 0, f"{name}: no NUL within {size} octets"
                )
            fields[name], pos = frame[pos:nul].decode("latin-1"), nul + 1
            if kind == "t" and len(fields[name]) not in (0, 16):
                raise PduError(status, 0, f"{name}: an SMPP time has 16 characters, got {fields[name]!r}")
    if not cls.HAS_BODY:
        if pos != end:
            raise PduError(_S.ESME_RINVCMDLEN, 0, f"{cls.__name__} has no body, got {end - pos} octets")
        return
    typed = _TYPED_TLVS[cls]
    extra: list[tuple[int, bytes]] = []
    while pos < end:
        if end - pos < 4:
            if not any(frame[pos:end]):
                break  # NUL padding after the last field, which some peers send
            raise PduError(_S.ESME_RINVOPTPARSTREAM, 0, f"{end - pos} stray octets after the TLVs")
        tag, n = struct.unpack_from(">HH", frame, pos)
        raw, pos = frame[pos + 4 : pos + 4 + n], pos + 4 + n
        if pos > end:
            raise PduError(_S.ESME_RINVOPTPARSTREAM, 0, f"TLV 0x{tag:04x} runs past the end of the PDU")
        if tag not in typed:
            extra.append((tag, raw))
        elif fields.get(typed[tag][0]) is not None:
            raise PduError(_S.ESME_RINVOPTPARSTREAM, 0, f"TLV 0x{tag:04x} appears twice")
        else:
            fields[typed[tag][0]] = _decode_tlv(typed[tag][1], raw, typed[tag][0])
    fields["extra_tlvs"] = tuple(extra)


def decode(frame: bytes) -> Pdu:
    """The PDU in ``frame`` (exactly one PDU, header included); raises :class:`PduError`.

    The error's ``command_status`` is ESME_RINVCMDLEN for a length problem (header, body shorter than
    its fields, leftover octets), ESME_RINVCMDID for an unknown command_id, the field's own status
    (ESME_RINVSRCADR, ESME_RINVMSGLEN, ESME_RINVSYSID, ...) for an over-long field, and
    ESME_RINVOPTPARSTREAM / ESME_RINVPARLEN / ESME_RINVOPTPARAMVAL for broken TLVs. ``command_id``
    and ``sequence_number`` are set whenever the header could be read.
    """
    frame = bytes(frame)
    if len(frame) < HEADER_LENGTH:
        raise PduError(_S.ESME_RINVCMDLEN, 0, f"{len(frame)} octets is shorter than a PDU header")
    length, command_id, status, seq = struct.unpack_from(">IIII", frame)
    try:
        if length != len(frame):
            raise PduError(_S.ESME_RINVCMDLEN, 0, f"command_length {length}, frame has {len(frame)} octets")
        cls = _BY_ID.get(command_id)
        if cls is None:
            raise PduError(_S.ESME_RINVCMDID, 0, f"unknown command_id 0x{command_id:08x}")
        fields: dict[str, Any] = {"sequence_number": seq, "command_status": _status(status)}
        if not (cls.BODY_OPTIONAL and length == HEADER_LENGTH):
            _decode_fields(cls, frame, fields)
        return cls(**fields)
    except PduError as exc:
        raise PduError(exc.command_status, seq, exc.detail, command_id=command_id) from None


# --- The plain path of encode ------------------------------------------------------------------
#
# Every message's submit_sm and every receipt's deliver_sm_resp are encoded here. The checked path
# above walks the field table one field at a time to say exactly what is wrong with a value;
# measured alone, that made a submit_sm 10.3 µs. Each class's table is compiled once into steps
# (runs of one-octet integers written by one bytes() call), which the plain path follows for PDUs
# whose every value is plainly valid: 6.4 µs. Anything else (a value out of range, a NUL inside a
# string, an optional or extra TLV, an error response whose body is left out) makes it give up,
# and the checked path writes or refuses the PDU as before, so the two cannot disagree;
# tests/channels/smpp/test_pdu.py holds them alike. (Decoding the same way was no faster than
# the checked loop, measured: decode keeps that one path.)

_CSTRING, _TIME, _OCTET, _OCTETS, _SHORT_MESSAGE = range(5)
_Step = tuple[int, Any, int]  # (kind, the getter of its field or fields, max octets with the NUL)
_NUL = b"\0"
_PLAIN_ERRORS = (UnicodeEncodeError, ValueError, TypeError, AttributeError, struct.error, OverflowError)


def _steps(fields: tuple[_F, ...]) -> list[tuple[int, tuple[str, ...], int]]:
    """The table's fields as steps, consecutive one-octet integers grouped into one step."""
    steps: list[tuple[int, tuple[str, ...], int]] = []
    for name, kind, size, _status in fields:
        if kind == "u8" and steps and steps[-1][0] in (_OCTET, _OCTETS):
            steps[-1] = (_OCTETS, (*steps[-1][1], name), 0)
        else:
            code = {"c": _CSTRING, "t": _TIME, "u8": _OCTET, "sm": _SHORT_MESSAGE}[kind]
            steps.append((code, (name,), size))
    return steps


class _Plan:
    """One PDU class's field table, compiled for the plain path."""

    def __init__(self, cls: type[Pdu]) -> None:
        self.command_id = int(cls.command_id)
        self.has_body = cls.HAS_BODY
        self.body_optional = cls.BODY_OPTIONAL
        steps = _steps(cls.BODY)
        self.encode_steps: tuple[_Step, ...] = tuple(
            (kind, operator.attrgetter(*names), size) for kind, names, size in steps
        )
        # The typed TLVs, all None on the plain path: their tuple is compared with one of Nones.
        self.tlv_values: Callable[[Pdu], tuple[Any, ...]] | None = None
        names = [name for name, _, _ in cls.TLVS]
        if names:
            values = operator.attrgetter(*names)
            self.tlv_values = values if len(names) > 1 else lambda pdu: (values(pdu),)
        self.no_tlvs = (None,) * len(names)

    def encode(self, pdu: Pdu) -> bytes | None:
        """The frame, or None for a PDU the checked path must write (or refuse): an unusual value,
        an optional TLV set, extra TLVs, or an error response whose body is left out."""
        if self.has_body and (pdu.extra_tlvs or (self.body_optional and pdu.command_status)):  # type: ignore[union-attr]
            return None
        if self.tlv_values is not None and self.tlv_values(pdu) != self.no_tlvs:
            return None
        parts: list[bytes] = []
        append = parts.append
        try:
            for kind, get, size in self.encode_steps:
                if kind == _OCTETS:
                    append(bytes(get(pdu)))
                elif kind == _OCTET:
                    append(bytes((get(pdu),)))
                elif kind == _SHORT_MESSAGE:
                    value = get(pdu)
                    if len(value) > MAX_SHORT_MESSAGE:
                        return None
                    append(bytes((len(value),)))
                    append(value)  # not bytes(value): a list of ints is no short_message
                else:
                    value = get(pdu)
                    raw = value.encode("latin-1")
                    if len(raw) >= size or _NUL in raw or (kind == _TIME and len(value) not in (0, 16)):
                        return None
                    append(raw)
                    append(_NUL)
            body = b"".join(parts)
            header = struct.pack(
                ">IIII", HEADER_LENGTH + len(body), self.command_id, pdu.command_status, pdu.sequence_number
            )
        except _PLAIN_ERRORS:
            return None
        return header + body


_PLANS: Final[dict[type[Pdu], _Plan]] = {cls: _Plan(cls) for cls in PDU_TYPES}
