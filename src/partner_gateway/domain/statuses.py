"""Channels, delivery statuses and the precedence rule of SPEC §4."""

from __future__ import annotations

import re
from enum import IntEnum, StrEnum


class Channel(StrEnum):
    """A channel's name, as the API spells it."""

    # The members are SPEC §1's three channels, which code names (the RCS fallback sends an SMS).
    # The set is open: any other name gives a value of this type too (`Channel("FAX")`, equal to
    # and hashed as the string), so a channel added by a registry entry (channels/registry.py)
    # travels through the store and the pipeline like these. Such values are made afresh, never
    # remembered, so input cannot grow the enumeration. Whether a name is served is the
    # registry's to say, not this type's: check with `ChannelRegistry.find`, never by catching
    # ValueError here.
    SMS = "SMS"
    RCS = "RCS"
    WHATSAPP = "WHATSAPP"

    @classmethod
    def _missing_(cls, value: object) -> Channel | None:
        if not isinstance(value, str) or not value:
            return None
        channel = str.__new__(cls, value)
        channel._name_ = value
        channel._value_ = value
        return channel


CHANNEL_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,9}")
"""A channel's name: upper case, as SPEC §1 spells them, and at most what the store keeps (10)."""


class _ChannelsByName(dict[str, Channel]):
    def __missing__(self, name: str) -> Channel:
        return Channel(name)


CHANNEL_BY_NAME: dict[str, Channel] = _ChannelsByName({channel.value: channel for channel in Channel})
"""A stored name to its Channel by dictionary look-up: several times cheaper than Channel(name) for
the three members, which adds up over a batch of rows; any other name is made on the spot."""


class DeliveryStatus(StrEnum):
    SENT = "SENT"
    RECEIVED = "RECEIVED"
    DELIVERED = "DELIVERED"
    ERROR = "ERROR"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"


class Rank(IntEnum):
    """How far a message has got; a report never lowers it (SPEC §4).

    `UNKNOWN` has two ranks: while queued inside the platform it is the lowest; reported by the
    provider, or reached after validity plus grace, it outranks the intermediate states.
    """

    QUEUED = 0
    SENT = 10
    RECEIVED = 20
    UNKNOWN_REPORTED = 30
    FINAL_FAILURE = 40  # ERROR and EXPIRED share a rank: the first reported stands
    DELIVERED = 50


def rank_of(status: DeliveryStatus, *, queued: bool = False) -> Rank:
    """The rank of a status; `queued` distinguishes the platform's own `UNKNOWN`."""
    if status is DeliveryStatus.UNKNOWN:
        return Rank.QUEUED if queued else Rank.UNKNOWN_REPORTED
    return _RANKS[status]


_RANKS: dict[DeliveryStatus, Rank] = {
    DeliveryStatus.SENT: Rank.SENT,
    DeliveryStatus.RECEIVED: Rank.RECEIVED,
    DeliveryStatus.ERROR: Rank.FINAL_FAILURE,
    DeliveryStatus.EXPIRED: Rank.FINAL_FAILURE,
    DeliveryStatus.DELIVERED: Rank.DELIVERED,
}

FINAL_STATUSES = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.ERROR, DeliveryStatus.EXPIRED})

ACCEPTED_DESCRIPTION = "Accepted, queued for delivery"

_DELIVERERS = {
    Channel.SMS: "the carrier",
    Channel.WHATSAPP: "WhatsApp",
    Channel.RCS: "RCS Business Messaging",
}


def deliverer(channel: Channel) -> str:
    """Who a channel hands messages to, for descriptions: "carrier" is SMS's word only."""
    return _DELIVERERS.get(channel, "the provider")


def no_receipt_description(channel: Channel) -> str:
    """SPEC §4's "No delivery receipt from the carrier", in the channel's own terms."""
    if channel is Channel.SMS:
        return "No delivery receipt from the carrier"
    return f"No delivery report from {deliverer(channel)}"


def unanswered_description(channel: Channel) -> str:
    """A hand-over that got no answer, ended UNKNOWN rather than sent twice."""
    who = deliverer(channel)
    return (
        f"{who[0].upper()}{who[1:]} did not answer the hand-over; the message may have been sent. "
        "It was not sent again, to avoid a duplicate."
    )
