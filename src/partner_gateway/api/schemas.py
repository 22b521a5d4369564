"""The API's wire shapes (msgspec Structs, camelCase on the wire).

msgspec decodes and validates a body in one pass, several times faster than the alternatives
measured for issue #6, and Litestar documents these Structs in the OpenAPI schema as they are.
Each channel's send request is its own, in its folder (channels/*/channel.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from partner_gateway.domain.statuses import Channel, DeliveryStatus


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


class StatusQuery(msgspec.Struct, forbid_unknown_fields=True):
    channel: str  # checked against the registry's channels (its `enum` is set in api/app.py)
    ids: list[str]


class HistoryPage(msgspec.Struct, rename="camel"):
    items: list[DeliveryStatusResponse]
    next_cursor: str | None


class MessageEventResponse(msgspec.Struct, rename="camel", omit_defaults=True):
    occurred_at: Annotated[
        str, msgspec.Meta(description="When it happened; never before the message's createdAt")
    ]
    recorded_at: str
    source: str
    delivery_status: DeliveryStatus | None
    raw_state: str | None
    description: str
    error_code: str | None
    provider_occurred_at: Annotated[
        str | None,
        msgspec.Meta(
            description="The time the provider gave, when it was before createdAt (coarse provider "
            "clocks: an SMPP done date has minutes); occurredAt is then createdAt"
        ),
    ] = None


class EventsResponse(msgspec.Struct, rename="camel"):
    customer_message_id: str
    channel: Channel
    events: list[MessageEventResponse]
