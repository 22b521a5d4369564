"""The simulator's pure rules: a message's fate from its destination (SPEC §6), message ids, and the
receipt ``deliver_sm`` each fate produces. No I/O, no clock: times and randomness come in as arguments.

| last two digits | submit_sm_resp | receipts (``stat``, message_state, err) |
|---|---|---|
| 00-89, 97-99 (and fewer than two digits) | ESME_ROK | DELIVRD 2 000 |
| 90 | ESME_RINVDSTADR, no id | none |
| 91 | ESME_ROK | UNDELIV 5 001 (GSM MAP "unknown subscriber") |
| 92 | ESME_ROK | EXPIRED 3 000 |
| 93 | ESME_ROK | ENROUTE 1 000 only, as an intermediate notification (esm_class 0x20) |
| 94 | ESME_ROK | none |
| 95 | ESME_ROK | UNKNOWN 7 000 |
| 96 | ESME_ROK | REJECTD 8 013 (GSM MAP "call barred") |

A final receipt is esm_class 0x04 (SMSC delivery receipt). The ENROUTE of 93 is esm_class 0x20, the
SMPP 3.4 §5.2.12 type for an intermediate delivery notification (what carriers that send ENROUTE use).

registered_delivery (bits 1-0) decides which final receipts are sent: 0 none, 1 all, 2 failures only
(every state but DELIVRD), 3 successes only (SMPP 5.0). The intermediate ENROUTE is sent whenever any
receipt is asked for (bits 1-0 non-zero, or the 0x10 intermediate-notification bit), so a gateway
asking for plain final receipts still sees 93 reach RECEIVED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final

from partner_gateway.channels.smpp.codec.constants import CommandStatus, EsmClass, RegisteredDelivery
from partner_gateway.channels.smpp.codec.pdu import DeliverSm, NetworkErrorCode, SubmitSm
from partner_gateway.domain.encoding import decode_gsm7
from partner_gateway.simulators.smsc.config import MessageIdFormat

NETWORK_TYPE_GSM: Final = 3
TEXT_PREVIEW_LENGTH: Final = 20


@dataclass(frozen=True, slots=True)
class ReceiptSpec:
    """One receipt a fate produces: the ``stat`` text, its message_state TLV value, the error code."""

    stat: str
    message_state: int
    error: int = 0
    intermediate: bool = False


@dataclass(frozen=True, slots=True)
class Fate:
    submit_status: int  # the submit_sm_resp command_status; anything but ESME_ROK gets no id, no receipt
    receipts: tuple[ReceiptSpec, ...]


DELIVERED: Final = ReceiptSpec("DELIVRD", 2)
EXPIRED: Final = ReceiptSpec("EXPIRED", 3)
DEFAULT_FATE: Final = Fate(CommandStatus.ESME_ROK, (DELIVERED,))
_OK = CommandStatus.ESME_ROK
FATES: Final[Mapping[int, Fate]] = MappingProxyType(
    {
        90: Fate(CommandStatus.ESME_RINVDSTADR, ()),
        91: Fate(_OK, (ReceiptSpec("UNDELIV", 5, 1),)),
        92: Fate(_OK, (EXPIRED,)),
        93: Fate(_OK, (ReceiptSpec("ENROUTE", 1, intermediate=True),)),
        94: Fate(_OK, ()),
        95: Fate(_OK, (ReceiptSpec("UNKNOWN", 7),)),
        96: Fate(_OK, (ReceiptSpec("REJECTD", 8, 13),)),
    }
)


def fate_for(destination_addr: str) -> Fate:
    """The fate of a message to ``destination_addr``, from its last two digits (see the table above)."""
    digits = "".join(ch for ch in destination_addr if "0" <= ch <= "9")
    return DEFAULT_FATE if len(digits) < 2 else FATES.get(int(digits[-2:]), DEFAULT_FATE)


def wanted(spec: ReceiptSpec, registered_delivery: int) -> bool:
    """Whether ``registered_delivery`` asks for this receipt (see the module docstring)."""
    mode = registered_delivery & 0x03
    if spec.intermediate:
        return mode != 0 or bool(registered_delivery & RegisteredDelivery.INTERMEDIATE_NOTIFICATION)
    success = spec.stat == DELIVERED.stat
    return mode == 1 or (mode == 2 and not success) or (mode == 3 and success)


class MessageIds:
    """Consecutive message ids from ``start``: 10 decimal digits (a start below 10**9 gives a leading
    zero, as many SMSCs do), or 16 upper-case hex digits starting ``0B`` (the Vonage look)."""

    _HEX_BASE: Final = 0x0B << 56

    def __init__(self, start: int) -> None:
        self._next = start

    def next(self, id_format: MessageIdFormat) -> str:
        n, self._next = self._next, self._next + 1
        if id_format == "hex":
            return f"{self._HEX_BASE + n % (1 << 56):016X}"
        return f"{n % 10**10:010d}"


def receipt_message_id(message_id: str, *, hex_to_decimal: bool = False, strip_zeros: bool = False) -> str:
    """The id as a receipt names it: the hex id's decimal value and/or without leading zeros."""
    if hex_to_decimal:
        message_id = str(int(message_id, 16))
    if strip_zeros:
        message_id = message_id.lstrip("0") or "0"
    return message_id


def receipt_date(moment: datetime, digits: int) -> str:
    """``YYMMDDhhmm`` (10 digits) or ``YYMMDDhhmmss`` (12) of ``moment`` as given (pass UTC)."""
    return moment.strftime("%y%m%d%H%M%S" if digits == 12 else "%y%m%d%H%M")


# Printable ASCII that means the same in GSM 03.38 (so data_coding 0 is honest): not $ @ [ \ ] ^ _ ` { | } ~.
_SAFE: Final = frozenset(
    " !\"#%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def text_preview(submit: SubmitSm, length: int = TEXT_PREVIEW_LENGTH) -> str:
    """The first ``length`` characters of the submitted text, UDH removed, decoded per data_coding
    (0 GSM 03.38 unpacked, 8 UCS-2, else Latin-1), with anything outside :data:`_SAFE` as ``?``."""
    raw = submit.short_message or submit.message_payload or b""
    if submit.esm_class & EsmClass.UDHI and raw:
        raw = raw[1 + raw[0] :]
    if submit.data_coding == 0x08:
        text = raw.decode("utf-16-be", "replace")
    elif submit.data_coding == 0x00:
        try:
            text = decode_gsm7(raw)
        except ValueError:
            text = raw.decode("latin-1")
    else:
        text = raw.decode("latin-1")
    return "".join(ch if ch in _SAFE else "?" for ch in text[:length])


def receipt_text(
    receipt_id: str, spec: ReceiptSpec, submitted_at: datetime, done_at: datetime, date_digits: int, text: str
) -> str:
    """The SMPP 3.4 Appendix B receipt text."""
    dlvrd = "001" if spec.stat == DELIVERED.stat else "000"
    return (
        f"id:{receipt_id} sub:001 dlvrd:{dlvrd} submit date:{receipt_date(submitted_at, date_digits)}"
        f" done date:{receipt_date(done_at, date_digits)} stat:{spec.stat} err:{spec.error:03d} Text:{text}"
    )


def receipt_pdu(
    submit: SubmitSm,
    spec: ReceiptSpec,
    *,
    receipt_id: str,
    submitted_at: datetime,
    done_at: datetime,
    date_digits: int,
    tlvs: bool,
) -> DeliverSm:
    """The receipt ``deliver_sm`` for ``submit`` (sequence_number 0: set it when sending). It comes
    from the handset (the submit's destination) to the submit's source; the text is data_coding 0."""
    text = receipt_text(receipt_id, spec, submitted_at, done_at, date_digits, text_preview(submit))
    kind = EsmClass.INTERMEDIATE_NOTIFICATION if spec.intermediate else EsmClass.DELIVERY_RECEIPT
    error = NetworkErrorCode(NETWORK_TYPE_GSM, spec.error) if tlvs and spec.error else None
    return DeliverSm(
        sequence_number=0,
        source_addr_ton=submit.dest_addr_ton,
        source_addr_npi=submit.dest_addr_npi,
        source_addr=submit.destination_addr,
        dest_addr_ton=submit.source_addr_ton,
        dest_addr_npi=submit.source_addr_npi,
        destination_addr=submit.source_addr,
        esm_class=int(kind),
        data_coding=0x00,
        short_message=text.encode("ascii"),
        receipted_message_id=receipt_id if tlvs else None,
        message_state=spec.message_state if tlvs else None,
        network_error_code=error,
    )
