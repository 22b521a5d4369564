"""Domain records to wire shapes, and the query-string parsing shared by several endpoints."""

from __future__ import annotations

from partner_gateway.api.problems import invalid
from partner_gateway.api.schemas import DeliveryStatusResponse
from partner_gateway.domain.messages import MessageStatus
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import format_ms

CHANNEL_CHOICES = ", ".join(channel.value for channel in Channel)


def status_response(message: MessageStatus) -> DeliveryStatusResponse:
    return DeliveryStatusResponse(
        customer_message_id=message.id,
        channel=message.channel,
        to=message.to,
        reference=message.reference,
        delivery_status=message.status,
        delivery_status_description=message.description,
        error_code=message.error_code,
        created_at=format_ms(message.created_at),
        updated_at=format_ms(message.updated_at),
        encoding="GSM7" if message.encoding == "GSM7" else "UCS2" if message.encoding == "UCS2" else None,
        segments=message.segments,
        read_at=format_ms(message.read_at) if message.read_at is not None else None,
    )


def parse_channel(value: str | None, *, required: bool = True, field: str = "channel") -> Channel | None:
    """Exactly SMS, RCS or WHATSAPP (SPEC §1); anything else is a 400 naming the allowed values."""
    if value is None or value == "":
        if required:
            raise invalid([(field, f"is required; one of {CHANNEL_CHOICES}")])
        return None
    try:
        return Channel(value)
    except ValueError:
        raise invalid([(field, f"must be one of {CHANNEL_CHOICES}")]) from None


def require_channel(value: str | None) -> Channel:
    channel = parse_channel(value, required=True)
    assert channel is not None
    return channel
