"""What the API answers, as frozen dataclasses with snake_case fields and `datetime`s in UTC, and
what the send calls take, as TypedDicts in the API's own camelCase (so the API reference reads
straight across). Every answer model keeps the JSON it was made from in `raw`: a field the
gateway adds later is there before this SDK knows its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NotRequired, Self, TypedDict

Channel = Literal["SMS", "RCS", "WHATSAPP"]
DeliveryStatus = Literal["SENT", "RECEIVED", "DELIVERED", "ERROR", "EXPIRED", "UNKNOWN"]
StatsBucketSize = Literal["hour", "day"]
CHANNELS: tuple[Channel, ...] = ("SMS", "RCS", "WHATSAPP")
FINAL_STATUSES: frozenset[str] = frozenset({"DELIVERED", "ERROR", "EXPIRED"})


def parse_time(value: Any) -> datetime | None:
    """`2026-11-27T10:15:30.123Z` as an aware datetime; None for null."""
    if value is None:
        return None
    return datetime.fromisoformat(str(value))


def _required_time(value: Any) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("a required time is missing from the answer")
    return parsed


# -- what the send calls take -------------------------------------------------------------


class WhatsAppTemplate(TypedDict):
    """An approved template: `name` (lower-case letters, digits, `_`), `language` (`en`, `en_US`)
    and the body placeholders' values in order."""

    name: str
    language: str
    parameters: NotRequired[list[str]]


class Suggestion(TypedDict):
    """An RCS suggested reply or action: `type` reply, dial (with `phoneNumber`) or openUrl (with `url`)."""

    type: Literal["reply", "dial", "openUrl"]
    text: str
    postbackData: NotRequired[str]
    phoneNumber: NotRequired[str]
    url: NotRequired[str]


class RichCard(TypedDict):
    """An RCS rich card."""

    title: NotRequired[str]
    description: NotRequired[str]
    mediaUrl: NotRequired[str]
    mediaHeight: NotRequired[Literal["SHORT", "MEDIUM", "TALL"]]
    suggestions: NotRequired[list[Suggestion]]


# The SMS sent instead when the destination cannot get RCS: `text`, and `from` (a keyword in
# Python, hence the functional form) as an SMS's sender.
FallbackSms = TypedDict("FallbackSms", {"text": str, "from": NotRequired[str]})


# -- what the API answers ---------------------------------------------------------------


@dataclass(frozen=True)
class MessageStatus:
    """A DeliveryStatusResponse (SPEC §3.2): the nine fields always present, the channel's extras
    when the gateway gives them."""

    customer_message_id: str
    channel: str
    to: str
    reference: str | None
    delivery_status: str
    delivery_status_description: str
    error_code: str | None
    created_at: datetime
    updated_at: datetime
    encoding: str | None = None
    segments: int | None = None
    read_at: datetime | None = None
    fallback_for: str | None = None
    fallback_sms: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        """DELIVERED, ERROR or EXPIRED: no later report changes it (SPEC §4's precedence aside:
        a DELIVERED after an ERROR is believed)."""
        return self.delivery_status in FINAL_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**_status_fields(data))


def _status_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "customer_message_id": str(data["customerMessageId"]),
        "channel": str(data["channel"]),
        "to": str(data["to"]),
        "reference": data.get("reference"),
        "delivery_status": str(data["deliveryStatus"]),
        "delivery_status_description": str(data.get("deliveryStatusDescription", "")),
        "error_code": data.get("errorCode"),
        "created_at": _required_time(data["createdAt"]),
        "updated_at": _required_time(data["updatedAt"]),
        "encoding": data.get("encoding"),
        "segments": data.get("segments"),
        "read_at": parse_time(data.get("readAt")),
        "fallback_for": data.get("fallbackFor"),
        "fallback_sms": data.get("fallbackSms"),
        "raw": dict(data),
    }


@dataclass(frozen=True)
class SentMessage(MessageStatus):
    """A send's 202 answer: the status (UNKNOWN, queued), where to look it up, the
    `Idempotency-Key` the call used (keep it to retry the send yourself later) and whether the
    gateway answered a replay of an earlier request with that key."""

    location: str | None = None
    idempotency_key: str = ""
    replayed: bool = False
    request_id: str | None = None


@dataclass(frozen=True)
class CallbackEvent(MessageStatus):
    """A status callback's body: the status right after the change, plus the event's own fields.
    Deduplicate on `event_id`; order a message's events by `sequence`."""

    event_id: str = ""
    occurred_at: datetime | None = None
    sequence: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            **_status_fields(data),
            event_id=str(data["eventId"]),
            occurred_at=parse_time(data.get("occurredAt")),
            sequence=int(data["sequence"]),
        )


@dataclass(frozen=True)
class MessageEvent:
    """One report in a message's timeline, with the provider's raw state."""

    occurred_at: datetime
    recorded_at: datetime
    source: str
    delivery_status: str | None
    raw_state: str | None
    description: str
    error_code: str | None
    provider_occurred_at: datetime | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            occurred_at=_required_time(data["occurredAt"]),
            recorded_at=_required_time(data["recordedAt"]),
            source=str(data.get("source", "")),
            delivery_status=data.get("deliveryStatus"),
            raw_state=data.get("rawState"),
            description=str(data.get("description", "")),
            error_code=data.get("errorCode"),
            provider_occurred_at=parse_time(data.get("providerOccurredAt")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Timeline:
    """`GET /messages/{id}/events`: every report recorded for the message, oldest first."""

    customer_message_id: str
    channel: str
    events: list[MessageEvent]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            customer_message_id=str(data["customerMessageId"]),
            channel=str(data["channel"]),
            events=[MessageEvent.from_json(item) for item in data.get("events", [])],
        )


@dataclass(frozen=True)
class CallbackAttempt:
    attempted_at: datetime
    url: str
    response_status: int | None
    error: str | None
    duration_ms: int | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            attempted_at=_required_time(data["attemptedAt"]),
            url=str(data.get("url", "")),
            response_status=data.get("responseStatus"),
            error=data.get("error"),
            duration_ms=data.get("durationMs"),
        )


@dataclass(frozen=True)
class CallbackDelivery:
    """One callback event of a message, as `GET /messages/{id}/callbacks` shows it."""

    event_id: str
    sequence: int
    occurred_at: datetime | None
    state: str  # PENDING, DELIVERED or GIVEN_UP
    next_attempt_at: datetime | None
    attempts: list[CallbackAttempt]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            event_id=str(data["eventId"]),
            sequence=int(data["sequence"]),
            occurred_at=parse_time(data.get("occurredAt")),
            state=str(data["state"]),
            next_attempt_at=parse_time(data.get("nextAttemptAt")),
            attempts=[CallbackAttempt.from_json(item) for item in data.get("attempts", [])],
        )


@dataclass(frozen=True)
class HistoryPage:
    """One page of `GET /messages/history`; `next_cursor` is None on the last."""

    items: list[MessageStatus]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            items=[MessageStatus.from_json(item) for item in data.get("items", [])],
            next_cursor=data.get("nextCursor"),
        )


@dataclass(frozen=True)
class CallbackSettings:
    """The company's default callback URL and whether it has a signing secret; `secret` only in
    the answer that made one (the first URL set, or a rotation): store it then."""

    url: str | None
    secret_set: bool
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(url=data.get("url"), secret_set=bool(data.get("secretSet")), secret=data.get("secret"))


# -- inbound, opt-outs, stats ---------------------------------------------------------------


@dataclass(frozen=True)
class InboundMessage:
    """What a user sent to one of the company's numbers, short codes, WhatsApp numbers or RBM
    agents (`GET /messages/inbound`). `sender` is the API's `from`; `type` is `text`, `binary`
    (SMS 8-bit data, the text its hex) or the provider's type, the text then its caption or a
    summary (docs/inbound.md)."""

    id: str
    channel: str
    sender: str
    to: str
    type: str
    text: str
    received_at: datetime
    parts: int
    provider_message_id: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**_inbound_fields(data))


def _inbound_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(data["id"]),
        "channel": str(data["channel"]),
        "sender": str(data["from"]),
        "to": str(data["to"]),
        "type": str(data.get("type", "text")),
        "text": str(data.get("text", "")),
        "received_at": _required_time(data["receivedAt"]),
        "parts": int(data.get("parts", 1)),
        "provider_message_id": data.get("providerMessageId"),
        "raw": dict(data),
    }


@dataclass(frozen=True)
class InboundEvent(InboundMessage):
    """An `inbound` callback's body: the inbound message plus the event's own fields (its
    `sequence` is always 1). Deduplicate on `event_id`, as status events."""

    event_id: str = ""
    occurred_at: datetime | None = None
    sequence: int = 1

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            **_inbound_fields(data),
            event_id=str(data["eventId"]),
            occurred_at=parse_time(data.get("occurredAt")),
            sequence=int(data.get("sequence", 1)),
        )


Event = CallbackEvent | InboundEvent
"""Any callback's body: a status event (no `event` field) or an `inbound` one."""


def event_from_json(data: Mapping[str, Any]) -> Event:
    """A callback body as its kind: `"event": "inbound"` is an InboundEvent; a body without an
    `event` field is a status CallbackEvent. Another kind (one this SDK does not know yet) is a
    ValueError rather than read as a status."""
    kind = data.get("event")
    if kind == "inbound":
        return InboundEvent.from_json(data)
    if kind is None:
        return CallbackEvent.from_json(data)
    raise ValueError(f"a callback event of a kind this SDK does not know: {kind!r}")


@dataclass(frozen=True)
class InboundPage:
    """One page of `GET /messages/inbound`; `next_cursor` is None on the last."""

    items: list[InboundMessage]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            items=[InboundMessage.from_json(item) for item in data.get("items", [])],
            next_cursor=data.get("nextCursor"),
        )


@dataclass(frozen=True)
class OptOut:
    """A number on the company's opt-out list for a channel: `source` is `keyword` (the user
    sent STOP or a synonym) or `api`."""

    channel: str
    number: str
    source: str
    created_at: datetime
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            channel=str(data["channel"]),
            number=str(data["number"]),
            source=str(data.get("source", "")),
            created_at=_required_time(data["createdAt"]),
            raw=dict(data),
        )


@dataclass(frozen=True)
class OptOutPage:
    """One page of `GET /opt-outs`, by channel then number; `next_cursor` is None on the last."""

    items: list[OptOut]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            items=[OptOut.from_json(item) for item in data.get("items", [])],
            next_cursor=data.get("nextCursor"),
        )


@dataclass(frozen=True)
class ErrorCodeCount:
    error_code: str
    count: int


@dataclass(frozen=True)
class ChannelStats:
    """One channel's messages accepted in a bucket: `counts` by current deliveryStatus (only the
    statuses some have), `delivery_rate` DELIVERED over those whose status is final (None when
    none is), the most frequent error codes (at most 10), and the time from acceptance to the
    first final status in ms (p50, p95; the upper bound of a bin within 19 %; None when none
    became final)."""

    channel: str
    total: int
    counts: Mapping[str, int]
    delivery_rate: float | None
    error_codes: list[ErrorCodeCount]
    latency_p50_ms: int | None
    latency_p95_ms: int | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        latency = data.get("latencyMs") or {}
        rate = data.get("deliveryRate")
        return cls(
            channel=str(data["channel"]),
            total=int(data["total"]),
            counts={str(status): int(count) for status, count in data.get("counts", {}).items()},
            delivery_rate=None if rate is None else float(rate),
            error_codes=[
                ErrorCodeCount(str(item["errorCode"]), int(item["count"]))
                for item in data.get("errorCodes", [])
            ],
            latency_p50_ms=latency.get("p50"),
            latency_p95_ms=latency.get("p95"),
        )


@dataclass(frozen=True)
class StatsBucket:
    """An hour or a day (UTC) of acceptance, `start` inclusive, `end` exclusive; a channel with
    no message in it is left out of `channels`."""

    start: datetime
    end: datetime
    channels: list[ChannelStats]

    def channel(self, name: str) -> ChannelStats | None:
        """The bucket's figures for one channel; None when it had no message."""
        return next((item for item in self.channels if item.channel == name), None)


@dataclass(frozen=True)
class Stats:
    """`GET /messages/stats`: every bucket of the window, in time order, empty ones included."""

    bucket: str
    start_date: datetime
    end_date: datetime
    buckets: list[StatsBucket]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            bucket=str(data["bucket"]),
            start_date=_required_time(data["startDate"]),
            end_date=_required_time(data["endDate"]),
            buckets=[
                StatsBucket(
                    start=_required_time(item["start"]),
                    end=_required_time(item["end"]),
                    channels=[ChannelStats.from_json(channel) for channel in item.get("channels", [])],
                )
                for item in data.get("buckets", [])
            ],
            raw=dict(data),
        )
