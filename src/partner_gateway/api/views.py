"""Domain records to wire shapes, and the query-string parsing shared by several endpoints."""

from __future__ import annotations

from partner_gateway.api.problems import invalid
from partner_gateway.api.schemas import DeliveryStatusResponse
from partner_gateway.channels.registry import ChannelRegistry
from partner_gateway.domain.messages import STATUS_FIELDS, MessageStatus
from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.domain.timefmt import format_ms


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
        encoding="GSM7" if encoding == "GSM7" else "UCS2" if encoding == "UCS2" else None,
        segments=segments,
        # A provider's read time can precede our acceptance (coarse clocks): never before createdAt.
        read_at=format_ms(max(read_at, created_at)) if read_at is not None else None,
        fallback_for=fallback_for,
        fallback_sms=fallback_sms,
    )


def status_response(message: MessageStatus) -> DeliveryStatusResponse:
    return status_item(*(getattr(message, name) for name in STATUS_FIELDS))


def require_channel(channels: ChannelRegistry, value: str | None) -> Channel:
    """Exactly a served channel's name (SPEC §1: SMS, RCS or WHATSAPP); anything else is a 400
    naming the allowed values."""
    if not value:
        raise invalid([("channel", f"is required; one of {channels.choices}")])
    channel = channels.find(value)
    if channel is None:
        raise invalid([("channel", f"must be one of {channels.choices}")])
    return channel
