"""The delivery lifecycle: whether a reported status changes a message, and what it keeps (SPEC §4).

A pure function of the current state and the report, so every process (API, worker, webhook)
applies the same rule whatever order reports arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass

from partner_gateway.domain.statuses import DeliveryStatus, Rank, rank_of

_FAILED = frozenset({DeliveryStatus.ERROR, DeliveryStatus.EXPIRED})


@dataclass(frozen=True, slots=True)
class CurrentState:
    status: DeliveryStatus
    rank: Rank


@dataclass(frozen=True, slots=True)
class ReportedStatus:
    """What a report (domain/reports.py, a provider's or the gateway's) states, as the rule reads it."""

    status: DeliveryStatus
    description: str
    error_code: str | None = None
    is_read: bool = False  # a read receipt: keeps DELIVERED and sets readAt
    queued: bool = False  # the platform's own "still queued" UNKNOWN


@dataclass(frozen=True, slots=True)
class Transition:
    changes_status: bool
    sets_read: bool
    new_rank: Rank


def decide(current: CurrentState, report: ReportedStatus) -> Transition:
    """Apply the precedence rule: a report never moves a message to a lower rank.

    Equal ranks do not replace each other either, so the first of ERROR/EXPIRED stands and a
    duplicate report changes nothing. A read receipt is a delivery confirmation as well (a read
    message was delivered, whether or not `delivered` was reported first).
    """
    new_rank = rank_of(report.status, queued=report.queued)
    changes = new_rank > current.rank
    return Transition(
        changes_status=changes,
        sets_read=report.is_read,
        new_rank=new_rank if changes else current.rank,
    )


def kept_error_code(status: DeliveryStatus, error_code: str | None) -> str | None:
    """The error code a message keeps when its status becomes `status`: only a failure has one.

    The API promises `errorCode` whenever a message is ERROR or EXPIRED and null otherwise
    (docs/error-codes.md). A code reported with another status (a multipart message's
    aggregate carries its part's, a provider may send one with any state) is dropped, so no code
    ever stands beside DELIVERED, and a delivery believed after a failure clears the failure's.
    A part keeps the code as reported: the message's is the one shown.
    """
    return error_code if status in _FAILED else None
