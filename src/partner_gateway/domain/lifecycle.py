"""The delivery lifecycle: whether a reported status changes a message (SPEC §4).

A pure function of the current state and the report, so every process (API, worker, webhook)
applies the same rule whatever order reports arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass

from partner_gateway.domain.statuses import DeliveryStatus, Rank, rank_of


@dataclass(frozen=True, slots=True)
class CurrentState:
    status: DeliveryStatus
    rank: Rank


@dataclass(frozen=True, slots=True)
class Report:
    """A status report from a provider or from the gateway itself."""

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


def decide(current: CurrentState, report: Report) -> Transition:
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


@dataclass(frozen=True, slots=True)
class PartState:
    part_no: int
    status: DeliveryStatus
    rank: Rank
    description: str
    error_code: str | None


def aggregate(parts: list[PartState]) -> PartState:
    """The status of a message sent in several parts (SMPP concatenation).

    DELIVERED only when every part is; ERROR or EXPIRED as soon as any part failed (the first
    failing part by number decides); otherwise the least advanced part's status.
    """
    ordered = sorted(parts, key=lambda part: part.part_no)
    failed = [part for part in ordered if part.rank is Rank.FINAL_FAILURE]
    if failed:
        return failed[0]
    if all(part.rank is Rank.DELIVERED for part in ordered):
        if len(ordered) == 1:
            return ordered[0]
        first = ordered[0]
        return PartState(0, first.status, first.rank, f"{first.description} (all {len(ordered)} parts)", None)
    return min(ordered, key=lambda part: (part.rank, part.part_no))
