"""What the platform records of a message, independent of storage and of the API's shape."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from partner_gateway.domain.statuses import Channel, DeliveryStatus


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A validated, accepted message about to be stored with its outbox item."""

    id: str
    company_id: str
    channel: Channel
    to: str
    sender: str | None
    reference: str | None
    created_at: int
    expires_at: int
    callback_url: str | None
    body: str  # the channel's content as JSON, read by the dispatcher
    encoding: str | None = None
    segments: int | None = None
    fallback_for: str | None = None  # an SMS sent in place of this RCS message


@dataclass(frozen=True, slots=True)
class MessageStatus:
    """The status of one message as a partner sees it.

    Its fields, in this order, are the one declaration of a status: the store reads exactly these
    columns in this order (STATUS_COLUMNS) and hands them to a StatusBuilder positionally, which
    makes MessageStatus itself or the API's answer (api/views.py `status_item`).
    """

    id: str
    channel: Channel
    to: str
    reference: str | None
    status: DeliveryStatus
    description: str
    error_code: str | None
    created_at: int
    updated_at: int
    read_at: int | None
    encoding: str | None
    segments: int | None
    fallback_for: str | None  # an SMS sent in place of this RCS message
    fallback_sms: str | None  # an RCS message's SMS sent in its place


STATUS_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(MessageStatus))


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """One report in a message's timeline (SPEC §4). `occurred_at` is never before the message was
    accepted; `reported_at` is the time the provider gave when that was earlier (`at_or_after`)."""

    occurred_at: int
    recorded_at: int
    source: str
    status: DeliveryStatus | None
    raw_state: str | None
    description: str
    error_code: str | None
    reported_at: int | None = None

    def at_or_after(self, accepted_at: int) -> MessageEvent:
        """This event, its time moved up to `accepted_at` if it claims to be earlier.

        Providers' clocks are coarse (an SMPP done date has minutes, a WhatsApp timestamp
        seconds) and not ours: a delivery can read as a minute before the acceptance it followed.
        Nothing happens to a message before we accept it, so the timeline says `accepted_at`
        and keeps the provider's own time beside it."""
        if self.occurred_at >= accepted_at:
            return self
        return replace(self, occurred_at=accepted_at, reported_at=self.occurred_at)


@dataclass(frozen=True, slots=True)
class HistoryPosition:
    """Where a history page ended: the keyset of its last item."""

    created_at: int
    message_id: str


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    company_id: str
    start: int | None = None  # inclusive, epoch ms
    end: int | None = None  # exclusive, epoch ms
    channel: Channel | None = None
    statuses: tuple[DeliveryStatus, ...] = ()
    to: str | None = None
