"""Domain records to wire shapes, and the query-string parsing shared by several endpoints."""

from __future__ import annotations

from partner_gateway.api.problems import invalid
from partner_gateway.api.schemas import DeliveryStatusResponse
from partner_gateway.channels.registry import ChannelRegistry
from partner_gateway.domain.messages import STATUS_FIELDS, MessageStatus
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.wire import status_item as status_item  # declared with the shape


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
