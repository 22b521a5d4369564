"""SMPP delivery receipts: parse a receipt ``deliver_sm``, map its state to a gateway status, match ids.

A receipt names the SMSC message id, a state and maybe an error in TLVs (``receipted_message_id``,
``message_state``, ``network_error_code``) and/or in the short_message text of SMPP 3.4 Appendix B::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E Text:...

TLVs win where present; the text fills in the rest. The text parser is tolerant of what carriers
really send: keys in any case, ``submitdate:``/``done_date:``, missing fields, 10- or 12-digit dates,
``err`` values such as ``0x1`` or ``075`` (kept as strings), and non-standard ``stat`` values. It
never raises. Dates carry no zone in the receipt; they are read as UTC. Text in exactly the form
above (nearly all of it) is read first by one regular expression, at a fraction of the cost, into
the same fields the tolerant parser would give.

The mapping to the gateway's statuses (SPEC §4) is data: :data:`STATE_TO_STATUS`. A state missing
from it maps to ``UNKNOWN``; the raw state is always kept on the receipt.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, Literal

from partner_gateway.channels.smpp.codec.constants import EsmClass
from partner_gateway.channels.smpp.codec.pdu import DeliverSm, NetworkErrorCode

MappedStatus = Literal["SENT", "RECEIVED", "DELIVERED", "ERROR", "EXPIRED", "UNKNOWN"]


@dataclass(frozen=True, slots=True)
class ReceiptOutcome:
    """What a receipt state means for the gateway: status, whether it settles the message, and why."""

    status: MappedStatus
    final: bool
    description: str


_R = ReceiptOutcome
STATE_TO_STATUS: Final[Mapping[str, ReceiptOutcome]] = MappingProxyType(
    {
        "ENROUTE": _R("RECEIVED", False, "En route: the carrier is still trying to deliver the message"),
        "ACCEPTD": _R("RECEIVED", False, "Accepted by the carrier's network, not yet delivered"),
        "ACCEPTED": _R("RECEIVED", False, "Accepted by the carrier's network, not yet delivered"),
        "SCHEDLD": _R("RECEIVED", False, "Scheduled: the carrier has not started delivery yet"),
        "BUFFRED": _R("RECEIVED", False, "Buffered: the handset is unreachable, the carrier will retry"),
        "BUFFERED": _R("RECEIVED", False, "Buffered: the handset is unreachable, the carrier will retry"),
        "DELIVRD": _R("DELIVERED", True, "Delivered to the handset"),
        "DELIVERED": _R("DELIVERED", True, "Delivered to the handset"),
        "EXPIRED": _R(
            "EXPIRED", True, "Expired: the validity period ended before the carrier could deliver it"
        ),
        "UNDELIV": _R("ERROR", True, "Undeliverable: the carrier could not deliver the message"),
        "UNDELIVERABLE": _R("ERROR", True, "Undeliverable: the carrier could not deliver the message"),
        "REJECTD": _R("ERROR", True, "Rejected by the carrier"),
        "REJECTED": _R("ERROR", True, "Rejected by the carrier"),
        "DELETED": _R("ERROR", True, "Deleted: the message was cancelled at the carrier before delivery"),
        "SKIPPED": _R("ERROR", True, "Skipped: the carrier accepted the message but did not transmit it"),
        "FAILED": _R("ERROR", True, "Failed: the carrier reported a delivery failure"),
        "NOCRED": _R("ERROR", True, "No credit: the account at the carrier has insufficient credit"),
        "SYSERR": _R("ERROR", True, "System error at the carrier"),
        "UNKNOWN": _R("UNKNOWN", False, "Unknown: the carrier reported the message state as unknown"),
    }
)
UNRECOGNISED_STATE: Final = _R(
    "UNKNOWN", False, "Unknown: the carrier reported no state or an unrecognised one"
)

# message_state TLV values (SMPP 3.4 §5.3.2.35; 9 = SKIPPED is SMPP 5.0) as receipt ``stat`` strings.
MESSAGE_STATE_TO_STAT: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "ENROUTE",
        2: "DELIVRD",
        3: "EXPIRED",
        4: "DELETED",
        5: "UNDELIV",
        6: "ACCEPTD",
        7: "UNKNOWN",
        8: "REJECTD",
        9: "SKIPPED",
    }
)


def outcome_for(state: str) -> ReceiptOutcome:
    """The table entry for ``state`` (any case), or :data:`UNRECOGNISED_STATE`."""
    return STATE_TO_STATUS.get(state.strip().upper(), UNRECOGNISED_STATE)


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    message_id: str  # the SMSC's id as the receipt gives it; match with message_id_variants()
    state: str  # upper case, as reported (e.g. "DELIVRD", "FAILED"); "" when the receipt has none
    error_code: str | None  # network_error_code's error as 3 decimal digits, else the text's err
    submit_date: datetime | None  # UTC
    done_date: datetime | None  # UTC
    is_intermediate: bool  # esm_class says intermediate notification, or the state is not yet final
    raw_text: str
    network_error_code: NetworkErrorCode | None = None

    @property
    def outcome(self) -> ReceiptOutcome:
        return outcome_for(self.state)


_KEY = re.compile(
    r"(?<![0-9A-Za-z_])(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat(?:us)?|err(?:or)?|text)[ \t]*:",
    re.IGNORECASE,
)
_KEY_NAMES: Final = {"status": "stat", "error": "err"}
_DATE = re.compile(r"[0-9]{10}(?:[0-9]{2})?")

# The Appendix B form exactly, as nearly every SMSC writes it: these keys in this order and case,
# single spaces, each value printable ASCII without a space or colon (so it is one token and hides
# no key). Anything else goes to the general parser.
_VALUE = r"([!-9;-~]*)"
_STANDARD = re.compile(
    rf"id:{_VALUE} sub:{_VALUE} dlvrd:{_VALUE} submit date:{_VALUE} done date:{_VALUE}"
    rf" stat:{_VALUE} err:{_VALUE} (?:Text|text|TEXT):"
)


def _text_fields(text: str) -> dict[str, str]:
    """Key -> value for the receipt text; keys normalised to id, sub, dlvrd, submitdate, donedate,
    stat, err, text. The first occurrence of a key wins; ``text`` takes the rest of the string."""
    fields = _standard_fields(text)
    return _general_fields(text) if fields is None else fields


def _standard_fields(text: str) -> dict[str, str] | None:
    """_text_fields for a text in the standard form (what _general_fields would read from it, for
    a fraction of the cost); None for any other text."""
    match = _STANDARD.match(text)
    if match is None:
        return None
    id_, sub, dlvrd, submit_date, done_date, stat, err = match.groups()
    return {
        "id": id_,
        "sub": sub,
        "dlvrd": dlvrd,
        "submitdate": submit_date,
        "donedate": done_date,
        "stat": stat,
        "err": err,
        "text": text[match.end() :],
    }


def _general_fields(text: str) -> dict[str, str]:
    """_text_fields for any text: keys in any case and spelling, anywhere, values split at any
    whitespace."""
    fields: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for i, match in enumerate(matches):
        key = re.sub(r"[ _]", "", match.group(1).lower())
        key = _KEY_NAMES.get(key, key)
        if key == "text":
            fields.setdefault(key, text[match.end() :])
            break
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        tokens = text[match.end() : end].replace("\0", " ").split()
        fields.setdefault(key, tokens[0] if tokens else "")
    return fields


def receipt_text_excerpt(raw_text: str) -> str | None:
    """The `Text:` field of a receipt (the start of the original message), when it has one."""
    excerpt = _text_fields(raw_text).get("text")
    return excerpt.strip() if excerpt and excerpt.strip() else None


@functools.lru_cache(maxsize=256)  # receipts arriving together share their minute, often their second
def _date(value: str | None) -> datetime | None:
    """``YYMMDDhhmm`` or ``YYMMDDhhmmss`` (20YY, UTC); None when absent or not a valid date."""
    if value is None or not _DATE.fullmatch(value):
        return None
    yy, mo, dd, hh, mi, ss = (int(value[i : i + 2] or 0) for i in range(0, 12, 2))
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss, tzinfo=UTC)
    except ValueError:
        return None


def parse_receipt_text(text: str) -> DeliveryReceipt | None:
    """A receipt from its short_message text alone; None when the text names no message id."""
    fields = _text_fields(text)
    if not fields.get("id"):
        return None
    return _receipt(
        fields["id"], fields.get("stat", "").upper(), fields.get("err") or None, fields, text, False
    )


# Plain ints: an IntFlag operation makes a flag object, about 1 µs each.
_TYPE_MASK: Final = int(EsmClass.TYPE_MASK)
_INTERMEDIATE: Final = int(EsmClass.INTERMEDIATE_NOTIFICATION)
_RECEIPT_TYPES: Final = frozenset({int(EsmClass.DELIVERY_RECEIPT), _INTERMEDIATE})


def is_receipt(pdu: DeliverSm) -> bool:
    """True for an SMSC delivery receipt or intermediate notification (esm_class message type 0x04
    or 0x20), or any deliver_sm carrying ``receipted_message_id``; False for a mobile-originated SMS."""
    kind = pdu.esm_class & _TYPE_MASK
    return kind in _RECEIPT_TYPES or pdu.receipted_message_id is not None


def parse_receipt(pdu: DeliverSm) -> DeliveryReceipt | None:
    """The receipt in ``pdu``, TLVs first, text second; None when it is not a receipt or names no id."""
    if not is_receipt(pdu):
        return None
    raw = pdu.short_message or pdu.message_payload or b""
    text = raw.decode("utf-16-be", "replace") if pdu.data_coding == 0x08 else raw.decode("latin-1")
    text = text.rstrip("\0")  # some SMSCs NUL-terminate the text
    fields = _text_fields(text)
    message_id = (pdu.receipted_message_id or "").strip() or fields.get("id", "")
    if not message_id:
        return None
    state = fields.get("stat", "").upper()
    if pdu.message_state is not None:
        state = MESSAGE_STATE_TO_STAT.get(pdu.message_state) or state or f"MESSAGE_STATE_{pdu.message_state}"
    nec = pdu.network_error_code
    error = f"{nec.error_code:03d}" if nec is not None else fields.get("err") or None
    intermediate = pdu.esm_class & _TYPE_MASK == _INTERMEDIATE
    return _receipt(message_id, state, error, fields, text, intermediate, nec)


def _receipt(
    message_id: str,
    state: str,
    error: str | None,
    fields: Mapping[str, str],
    text: str,
    intermediate: bool,
    nec: NetworkErrorCode | None = None,
) -> DeliveryReceipt:
    return DeliveryReceipt(
        message_id=message_id,
        state=state,
        error_code=error,
        submit_date=_date(fields.get("submitdate")),
        done_date=_date(fields.get("donedate")),
        is_intermediate=intermediate or outcome_for(state).status == "RECEIVED",
        raw_text=text,
        network_error_code=nec,
    )


_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")


def canonical_message_id(raw_id: str) -> str:
    """The key to store a submit_sm_resp id under: surrounding whitespace removed, lower case,
    leading zeros removed (an all-zero id becomes "0")."""
    value = raw_id.strip().lower()
    return value.lstrip("0") or value[:1]


def message_id_variants(raw_id: str) -> tuple[str, ...]:
    """Ids to try, in this order, when looking up the submission a receipt's id refers to.

    1. the id as given (surrounding whitespace removed); 2. that in lower case;
    3. :func:`canonical_message_id` (lower case, leading zeros removed);
    4. if the id is all decimal digits (at most 40): its value in lower-case hex, no leading zeros;
    5. if the id is all hex digits (at most 32; so also every decimal id): its value in decimal.
    Duplicates are dropped, order kept; an empty id gives (). Forms 3-5 are canonical keys, so a
    store keyed by ``canonical_message_id`` finds the submission whether the carrier changed case,
    dropped leading zeros, or switched between hex and decimal. Try exact forms first and scope the
    lookup to the bind or route: a short decimal id's hex form can collide with another message's id.
    """
    given = raw_id.strip()
    if not given:
        return ()
    forms = [given, given.lower(), canonical_message_id(given)]
    if len(given) <= 40 and _DECIMAL.fullmatch(given):
        forms.append(format(int(given), "x"))
    if len(given) <= 32 and _HEX.fullmatch(given):
        forms.append(str(int(given, 16)))
    return tuple(dict.fromkeys(forms))
