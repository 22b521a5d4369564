"""A message's status as partners see it on the wire, declared once: the API answers it (§3.2)
and a status callback pushes it with its event's fields (§5).

It sits here, below the API and the store, because the store renders a callback's body in the
transaction of the change it reports (the exact bytes every attempt sends), and the store may
not import the API. msgspec encodes it; nothing here does I/O.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.domain.timefmt import format_ms


class DeliveryStatusResponse(msgspec.Struct, rename="camel", omit_defaults=True):
    """The status of one message. The first nine fields are always present."""

    customer_message_id: str
    channel: Channel
    to: str
    reference: str | None
    delivery_status: DeliveryStatus
    delivery_status_description: str
    error_code: str | None
    created_at: str
    updated_at: str
    encoding: Literal["GSM7", "UCS2"] | None = None
    segments: int | None = None
    read_at: str | None = None
    fallback_for: Annotated[
        str | None,
        msgspec.Meta(description="On an SMS sent in place of an RCS message: that RCS message's id"),
    ] = None
    fallback_sms: Annotated[
        str | None,
        msgspec.Meta(
            description="On an RCS message its destination could not get: the id of the SMS sent instead "
            "(its status follows that SMS's)"
        ),
    ] = None


class CallbackEventBody(DeliveryStatusResponse, kw_only=True):
    """A status callback's body: the status right after the change, and the event's own fields."""

    event_id: str
    occurred_at: str
    sequence: int


def status_item(
    message_id: str,
    channel: Channel,
    to: str,
    reference: str | None,
    status: DeliveryStatus,
    description: str,
    error_code: str | None,
    created_at: int,
    updated_at: int,
    read_at: int | None,
    encoding: str | None,
    segments: int | None,
    fallback_for: str | None = None,
    fallback_sms: str | None = None,
    /,
) -> DeliveryStatusResponse:
    """The wire shape of one message's status, made from its fields: a StatusBuilder for the store."""
    return DeliveryStatusResponse(
        customer_message_id=message_id,
        channel=channel,
        to=to,
        reference=reference,
        delivery_status=status,
        delivery_status_description=description,
        error_code=error_code,
        created_at=format_ms(created_at),
        updated_at=format_ms(updated_at),
        encoding=_encoding(encoding),
        segments=segments,
        # A provider's read time can precede our acceptance (coarse clocks): never before createdAt.
        read_at=format_ms(max(read_at, created_at)) if read_at is not None else None,
        fallback_for=fallback_for,
        fallback_sms=fallback_sms,
    )


def _encoding(encoding: str | None) -> Literal["GSM7", "UCS2"] | None:
    return "GSM7" if encoding == "GSM7" else "UCS2" if encoding == "UCS2" else None


_ENCODER = msgspec.json.Encoder()


def callback_body(status: DeliveryStatusResponse, *, event_id: str, occurred_at: int, sequence: int) -> bytes:
    """The JSON bytes of one status callback (SPEC §5): the message's status as the API answers it
    (`status_item`) plus `eventId`, `occurredAt` and `sequence`."""
    fields = {name: getattr(status, name) for name in DeliveryStatusResponse.__struct_fields__}
    return _ENCODER.encode(
        CallbackEventBody(**fields, event_id=event_id, occurred_at=format_ms(occurred_at), sequence=sequence)
    )
