"""Channels, delivery statuses and the precedence rule of SPEC §4."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Channel(StrEnum):
    SMS = "SMS"
    RCS = "RCS"
    WHATSAPP = "WHATSAPP"


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
