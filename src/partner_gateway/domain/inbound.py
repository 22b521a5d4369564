"""Inbound messages (mobile-originated SMS, WhatsApp and RBM user messages) and opt-out keywords. Pure.

A provider turns what a user sent into an `InboundMessage`: who sent it (`sender`), to which of
our numbers, short codes, WhatsApp numbers or RBM agents (`recipient`, what an operator assigns
to a company), its text (or, for media and the like, a caption or a summary of it) and its
`kind`. `dedup_key` names it for the store: the same key is stored once (a redelivered
`deliver_sm`, a webhook Meta or Google posts again).

Opt-out: a message whose whole text is one of the opt-out keywords (STOP and its synonyms, any
case, surrounding spaces and punctuation ignored) adds the sender to its company's list for the
channel; an opt-in keyword (START, UNSTOP) removes it. "STOP sending me offers" is a message,
not a keyword: carriers' and CTIA's rules match the keyword alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

import msgspec
from ulid import ULID

from partner_gateway.domain.encoding import decode_gsm7, decode_ucs2
from partner_gateway.domain.statuses import Channel

INBOUND_ID_PREFIX: Final = "in_"
DEFAULT_OPT_OUT_KEYWORDS: Final = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT")
DEFAULT_OPT_IN_KEYWORDS: Final = ("START", "UNSTOP")
MAX_TEXT: Final = 10_000  # the longest text kept (a 255-part SMS is under 40,000 octets)
MAX_NUMBER: Final = 100  # an E.164 number, a short code, a WhatsApp id, an RBM agent id

OptAction = Literal["opt_out", "opt_in"]
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")


def new_inbound_id(epoch_ms: int) -> str:
    return INBOUND_ID_PREFIX + str(ULID.from_timestamp(epoch_ms))


def normalize_number(text: str) -> str:
    """A number or short code as it is assigned and matched: spaces, dashes, dots and brackets
    dropped, and a leading + (an SMSC writes 4915112345678, Meta 4915112345678, a person
    +49 151 1234 5678). Anything else (an RBM agent id) is kept as it is, case included."""
    compact = re.sub(r"[\s().-]", "", text.strip())
    digits = compact.removeprefix("+")
    return digits if digits.isdigit() else text.strip()


def display_number(text: str) -> str:
    """How an address is shown: a number longer than a short code in E.164 (+ and digits)."""
    digits = normalize_number(text)
    return f"+{digits}" if digits.isdigit() and len(digits) > 8 else digits


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """What a user sent, as a provider read it."""

    channel: Channel
    provider: str  # smpp:<carrier>, whatsapp, rcs
    sender: str  # the user: an E.164 number (RBM's msisdn, WhatsApp's wa_id, an SMS source_addr)
    recipient: str  # ours: a number, a short code, a WhatsApp phone number, an RBM agent id
    text: str
    kind: str  # text, or the provider's type: image, location, suggestion_response, ...
    received_at: int  # epoch ms, the provider's time when it gives one
    dedup_key: str
    provider_message_id: str | None = None
    parts: int = 1
    raw: Sequence[Mapping[str, Any]] = field(default_factory=tuple)  # what arrived, JSON-able


@dataclass(frozen=True, slots=True)
class OptKeywords:
    """The keywords that opt a sender out and in, upper case."""

    opt_out: frozenset[str]
    opt_in: frozenset[str]

    @classmethod
    def of(cls, opt_out: Iterable[str], opt_in: Iterable[str]) -> OptKeywords:
        return cls(
            frozenset(w.strip().upper() for w in opt_out), frozenset(w.strip().upper() for w in opt_in)
        )

    def action(self, text: str) -> OptAction | None:
        """What the whole text asks for, if it is one keyword."""
        word = _EDGES.sub("", text.strip()).upper()
        if word in self.opt_out:
            return "opt_out"
        if word in self.opt_in:
            return "opt_in"
        return None


@dataclass(frozen=True, slots=True)
class InboundPart:
    """One part of a concatenated mobile-originated SMS (a UDH or sar_* TLVs said so), header
    removed. The store keeps parts until all `total` are there, then joins them (`join_parts`)."""

    provider: str
    sender: str
    recipient: str
    reference: int
    total: int
    seq: int
    data_coding: int
    payload: bytes
    received_at: int

    @property
    def channel(self) -> Channel:
        return Channel.SMS


def decode_sms(data_coding: int, payload: bytes) -> tuple[str, str]:
    """The text of a short message and its kind: "text", or "binary" for 8-bit data (shown as
    hex). GSM 03.38 (0, unpacked septets, as SMPP carries them), IA5 (1), Latin-1 (3), UCS-2 (8),
    and the 0xF_ coding group; a "default alphabet" octet above 0x7F is read as Latin-1, which
    is what such carriers send."""
    coding = data_coding
    if coding & 0xF0 == 0xF0:  # TS 23.038 data coding/message class group: bit 2 says 8-bit
        coding = 4 if coding & 0x04 else 0
    try:
        if coding == 0:
            try:
                return decode_gsm7(payload), "text"
            except ValueError:
                return payload.decode("latin-1"), "text"
        if coding == 1:
            return payload.decode("ascii", "replace"), "text"
        if coding == 3:
            return payload.decode("latin-1"), "text"
        if coding == 8:
            return decode_ucs2(payload), "text"
    except ValueError:
        return payload.decode("utf-16-be", "replace"), "text"
    return payload.hex(), "binary"


def join_parts(parts: Sequence[InboundPart], dedup_key: str) -> InboundMessage:
    """The message that all of a concatenated SMS's parts make, in their order. The octets are
    joined before decoding: a character cut between two parts is whole again."""
    ordered = sorted(parts, key=lambda part: part.seq)
    first = ordered[0]
    text, kind = decode_sms(first.data_coding, b"".join(part.payload for part in ordered))
    return InboundMessage(
        channel=Channel.SMS,
        provider=first.provider,
        sender=first.sender,
        recipient=first.recipient,
        text=text[:MAX_TEXT],
        kind=kind,
        received_at=max(part.received_at for part in ordered),
        dedup_key=dedup_key,
        parts=len(ordered),
        raw=[
            {
                "seq": p.seq,
                "total": p.total,
                "reference": p.reference,
                "dataCoding": p.data_coding,
                "payload": p.payload.hex(),
            }
            for p in ordered
        ],
    )


DEFAULT_KEYWORDS: Final = OptKeywords.of(DEFAULT_OPT_OUT_KEYWORDS, DEFAULT_OPT_IN_KEYWORDS)


class InboundMessageResponse(msgspec.Struct, rename="camel"):
    """An inbound message as the API lists it and its callback carries it."""

    id: Annotated[str, msgspec.Meta(description="The gateway's id of the inbound message: in_ + ULID")]
    channel: Channel
    from_: Annotated[str, msgspec.Meta(description="The user who sent it")] = msgspec.field(name="from")
    to: Annotated[
        str,
        msgspec.Meta(
            description="The company's number, short code, WhatsApp number or RBM agent it was sent to"
        ),
    ]
    type: Annotated[
        str,
        msgspec.Meta(
            description="text; for SMS also binary (8-bit data, the text is its hex); for WhatsApp and "
            "RBM the provider's type (image, location, button, suggestion_response, ...), the text "
            "then its caption or a summary"
        ),
    ]
    text: str
    received_at: str
    parts: Annotated[int, msgspec.Meta(description="How many SMS parts were joined (1 otherwise)")]
    provider_message_id: Annotated[
        str | None, msgspec.Meta(description="The provider's id (wamid, RBM messageId); null for SMS")
    ]


class InboundCallbackBody(InboundMessageResponse, kw_only=True):
    event: Annotated[str, msgspec.Meta(description='Always "inbound" (status events have no event field)')]
    event_id: str
    occurred_at: str
    sequence: int


_ENCODER = msgspec.json.Encoder()


def inbound_callback_body(view: InboundMessageResponse, *, event_id: str, occurred_at: str) -> bytes:
    """The bytes of an inbound message's callback: its list item plus the event's fields."""
    fields = {name: getattr(view, name) for name in view.__struct_fields__}
    return _ENCODER.encode(
        InboundCallbackBody(**fields, event="inbound", event_id=event_id, occurred_at=occurred_at, sequence=1)
    )
