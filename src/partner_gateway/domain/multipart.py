"""A message sent in several parts (SMPP concatenation): its status from its parts' (SPEC §4).

Each part has receipts of its own, applied to the part with the lifecycle rule
(domain/lifecycle.py); the message then shows what its parts add up to, applied to it with the
same rule as any other report.
"""

from __future__ import annotations

from dataclasses import dataclass

from partner_gateway.domain.lifecycle import ReportedStatus
from partner_gateway.domain.statuses import DeliveryStatus, Rank


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


def not_accepted_yet(part_no: int) -> PartState:
    """A part the provider has not accepted yet counts as queued: a message whose first parts
    were delivered cannot look delivered while its last ones still wait to be sent."""
    return PartState(part_no, DeliveryStatus.UNKNOWN, Rank.QUEUED, "Queued", None)


def message_report(parts: list[PartState]) -> ReportedStatus:
    """The report a message gets from its parts: their aggregate.

    While the least advanced part is not accepted yet, that is the platform's own queued UNKNOWN
    (`queued`), which ranks lowest and so changes nothing; an UNKNOWN a provider reported for a
    part outranks SENT and RECEIVED, for the message as for the part.
    """
    overall = aggregate(parts)
    return ReportedStatus(
        overall.status, overall.description, overall.error_code, queued=overall.rank is Rank.QUEUED
    )


def part_description(description: str, part_no: int, parts_total: int) -> str:
    """A part's report as the message's timeline says it: "... (part N)" for one of several
    parts, so the entries of different parts read apart; a single part's as reported."""
    return description if parts_total == 1 else f"{description} (part {part_no})"
