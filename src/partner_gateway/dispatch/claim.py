"""A claimed outbox item with its message decoded once: what every step of a hand-over reads.

The item's body (the channel's fields of the send request, as JSON) is decoded when the item is
claimed, into the `OutboundMessage` the provider is given; the retry decision, the fallback and
the receipt watch read that same value, never the body again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from partner_gateway.channels.base import OutboundMessage
from partner_gateway.store.repositories.delivery import ClaimedItem

_decode_content = msgspec.json.Decoder(dict[str, Any]).decode


@dataclass(frozen=True, slots=True)
class Claim:
    item: ClaimedItem  # the outbox row: its id, attempts, parts already accepted
    message: OutboundMessage  # what the provider is handed, its content decoded from the body

    @classmethod
    def of(cls, item: ClaimedItem) -> Claim:
        message = OutboundMessage(
            message_id=item.message_id,
            company_id=item.company_id,
            channel=item.channel,
            to=item.to,
            sender=item.sender,
            content=_decode_content(item.body),
            created_at=item.created_at,
            expires_at=item.expires_at,
            parts_done=item.parts_done,
        )
        return cls(item, message)

    @property
    def fallback_sms(self) -> Mapping[str, Any] | None:
        """The SMS to send instead when the destination cannot receive on the channel (RCS)."""
        fallback = self.message.content.get("fallbackSms")
        return fallback or None
