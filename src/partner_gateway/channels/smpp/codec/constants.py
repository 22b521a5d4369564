"""SMPP 3.4 numbers: command ids, command_status codes and their names, TLV tags, esm_class and delivery flags."""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final

HEADER_LENGTH: Final = 16
MAX_PDU_LENGTH: Final = 64 * 1024
INTERFACE_VERSION_34: Final = 0x34
MAX_SHORT_MESSAGE: Final = 254
RESPONSE_BIT: Final = 0x80000000  # set in the command_id of every response


class CommandId(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015


class CommandStatus(IntEnum):
    """SMPP 3.4 §5.1.3 error codes (0x400-0x4FF are vendor specific and stay plain ints)."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF


_COMMAND_STATUSES: Final[dict[int, CommandStatus]] = {int(status): status for status in CommandStatus}


def known_status(value: int) -> int:
    """The value as a :class:`CommandStatus` when it is one (nicer reprs), else the plain int."""
    return _COMMAND_STATUSES.get(value, value)


def status_name(status: int) -> str:
    """``ESME_RINVPASWD`` for a known command_status, else its hex value (vendor codes)."""
    known = _COMMAND_STATUSES.get(status)
    return known.name if known is not None else f"0x{status:08x}"


class Tag(IntEnum):
    """TLV tags this codec types by name (others are kept raw in ``extra_tlvs``)."""

    RECEIPTED_MESSAGE_ID = 0x001E
    USER_MESSAGE_REFERENCE = 0x0204
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


class EsmClass(IntFlag):
    """esm_class bits. Bits 5-2 are the message type: compare ``esm_class & TYPE_MASK``."""

    DEFAULT = 0x00
    DELIVERY_RECEIPT = 0x04  # deliver_sm: SMSC delivery receipt
    SME_DELIVERY_ACK = 0x08
    SME_MANUAL_ACK = 0x10
    INTERMEDIATE_NOTIFICATION = 0x20  # deliver_sm: intermediate delivery notification
    TYPE_MASK = 0x3C
    UDHI = 0x40  # short_message starts with a User Data Header
    REPLY_PATH = 0x80


class RegisteredDelivery(IntFlag):
    NONE = 0x00
    RECEIPT_ON_FINAL = 0x01  # receipt on final delivery outcome, success or failure
    RECEIPT_ON_FAILURE = 0x02
    SME_DELIVERY_ACK = 0x04
    SME_MANUAL_ACK = 0x08
    INTERMEDIATE_NOTIFICATION = 0x10
