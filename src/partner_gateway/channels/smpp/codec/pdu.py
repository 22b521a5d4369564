"""SMPP 3.4 PDUs as typed values: one frozen dataclass per command, its body described by a field table.

A frame is one whole PDU: the 16-octet header (command_length, command_id, command_status,
sequence_number, all big-endian) followed by the body; :mod:`.encoder` and :mod:`.decoder` turn one
into the other by these tables. Malformed input raises :class:`PduError`, which carries the
``command_status`` a ``generic_nack`` (or the command's ``*_resp``) should report. ``encode`` raises
it too, e.g. ``ESME_RINVDSTADR`` for a 30-digit destination, so the caller can classify the failure
like the carrier's own answer.

C-Octet-Strings are ``str`` (Latin-1, so every octet round-trips); their maximum sizes below include
the terminating NUL, as in the specification. TLVs the PDU types by name are fields; any other TLV is
kept in ``extra_tlvs`` as a raw ``(tag, value)`` pair and written back after the typed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, NamedTuple

from partner_gateway.channels.smpp.codec.constants import (
    INTERFACE_VERSION_34,
    MAX_SHORT_MESSAGE,
    RESPONSE_BIT,
    CommandId,
    CommandStatus,
    Tag,
    status_name,
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
        super().__init__(f"{status_name(command_status)} (sequence_number={sequence_number}): {detail}")
        self.command_status = command_status
        self.sequence_number = sequence_number
        self.command_id = command_id
        self.detail = detail


Tlvs = tuple[tuple[int, bytes], ...]
_S = CommandStatus
# Body fields: (name, kind, max octets incl. NUL, status reported when invalid).
# kinds: "c" C-Octet-String, "t" SMPP time (empty or 16 chars), "u8" integer, "sm" sm_length + short_message.
FieldSpec = tuple[str, str, int, int]
# Typed TLVs: (name, tag, kind); kinds "u8", "u16", "c" (C-Octet-String <= 65), "b" (octets), "ne".
TlvSpec = tuple[str, int, str]

_BIND: tuple[FieldSpec, ...] = (
    ("system_id", "c", 16, _S.ESME_RINVSYSID),
    ("password", "c", 9, _S.ESME_RINVPASWD),
    ("system_type", "c", 13, _S.ESME_RINVSYSTYP),
    ("interface_version", "u8", 1, _S.ESME_RINVPARLEN),
    ("addr_ton", "u8", 1, _S.ESME_RINVSRCTON),
    ("addr_npi", "u8", 1, _S.ESME_RINVSRCNPI),
    ("address_range", "c", 41, _S.ESME_RINVPARLEN),
)
_SM: tuple[FieldSpec, ...] = (
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
_MESSAGE_ID: tuple[FieldSpec, ...] = (("message_id", "c", 65, _S.ESME_RINVMSGID),)
_SM_TLVS: tuple[TlvSpec, ...] = (
    ("user_message_reference", Tag.USER_MESSAGE_REFERENCE, "u16"),
    ("sar_msg_ref_num", Tag.SAR_MSG_REF_NUM, "u16"),
    ("sar_total_segments", Tag.SAR_TOTAL_SEGMENTS, "u8"),
    ("sar_segment_seqnum", Tag.SAR_SEGMENT_SEQNUM, "u8"),
    ("message_payload", Tag.MESSAGE_PAYLOAD, "b"),
)
_RECEIPT_TLVS: tuple[TlvSpec, ...] = (
    ("receipted_message_id", Tag.RECEIPTED_MESSAGE_ID, "c"),
    ("message_state", Tag.MESSAGE_STATE, "u8"),
    ("network_error_code", Tag.NETWORK_ERROR_CODE, "ne"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Header:
    command_id: ClassVar[CommandId]
    BODY: ClassVar[tuple[FieldSpec, ...]] = ()
    TLVS: ClassVar[tuple[TlvSpec, ...]] = ()
    HAS_BODY: ClassVar[bool] = False  # a PduWithBody
    BODY_OPTIONAL: ClassVar[bool] = False  # a response whose body may be absent (e.g. on error)
    sequence_number: int
    command_status: int = CommandStatus.ESME_ROK


@dataclass(frozen=True, slots=True, kw_only=True)
class PduWithBody(_Header):
    """A PDU that may carry a body and TLVs (raw ones in ``extra_tlvs``)."""

    HAS_BODY = True
    extra_tlvs: Tlvs = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bind(PduWithBody):
    BODY = _BIND
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _BindResp(PduWithBody):
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
class _ShortMessage(PduWithBody):
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
class _MessageIdResp(PduWithBody):
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
BindRequest = BindTransmitter | BindReceiver | BindTransceiver
BindResponse = BindTransmitterResp | BindReceiverResp | BindTransceiverResp
PDU_TYPES: Final[tuple[type[Pdu], ...]] = (
    BindTransmitter, BindTransmitterResp, BindReceiver, BindReceiverResp, BindTransceiver,
    BindTransceiverResp, Unbind, UnbindResp, EnquireLink, EnquireLinkResp, GenericNack,
    SubmitSm, SubmitSmResp, DeliverSm, DeliverSmResp,
)  # fmt: skip
BY_COMMAND_ID: Final[dict[int, type[Pdu]]] = {cls.command_id: cls for cls in PDU_TYPES}
RESPONSE_TO: Final[dict[int, type[Pdu]]] = {
    # The response to each request: its command_id with the response bit set.
    command_id: BY_COMMAND_ID[command_id | RESPONSE_BIT]
    for command_id in BY_COMMAND_ID
    if not command_id & RESPONSE_BIT
}
