"""A message sent in several parts: its status and timeline text from its parts' (SPEC §4)."""

from __future__ import annotations

import pytest

from partner_gateway.domain.lifecycle import CurrentState, ReportedStatus, decide
from partner_gateway.domain.multipart import (
    PartState,
    aggregate,
    message_report,
    not_accepted_yet,
    part_description,
)
from partner_gateway.domain.statuses import DeliveryStatus, Rank

S = DeliveryStatus


def part(no: int, status: DeliveryStatus, rank: Rank, error_code: str | None = None) -> PartState:
    return PartState(no, status, rank, f"{status.value.lower()} {no}", error_code)


DELIVERED_1 = part(1, S.DELIVERED, Rank.DELIVERED)
DELIVERED_2 = part(2, S.DELIVERED, Rank.DELIVERED)
DELIVERED_3 = part(3, S.DELIVERED, Rank.DELIVERED)
SENT_1 = part(1, S.SENT, Rank.SENT)
SENT_2 = part(2, S.SENT, Rank.SENT)
RECEIVED_1 = part(1, S.RECEIVED, Rank.RECEIVED)
RECEIVED_2 = part(2, S.RECEIVED, Rank.RECEIVED)
UNKNOWN_2 = part(2, S.UNKNOWN, Rank.UNKNOWN_REPORTED)
ERROR_1 = part(1, S.ERROR, Rank.FINAL_FAILURE, "smpp-err:001")
ERROR_2 = part(2, S.ERROR, Rank.FINAL_FAILURE, "smpp-err:001")
EXPIRED_1 = part(1, S.EXPIRED, Rank.FINAL_FAILURE, "smpp-stat:EXPIRED")

AGGREGATES: dict[str, tuple[list[PartState], PartState]] = {
    "one part: itself": ([DELIVERED_1], DELIVERED_1),
    "one part, not delivered: itself": ([SENT_1], SENT_1),
    "every part delivered": (
        [DELIVERED_2, DELIVERED_1],
        PartState(0, S.DELIVERED, Rank.DELIVERED, "delivered 1 (all 2 parts)", None),
    ),
    "a failed part decides": ([DELIVERED_1, ERROR_2], ERROR_2),
    "the first failing part by number": ([ERROR_2, EXPIRED_1], EXPIRED_1),
    "a failure outranks a part not accepted yet": ([ERROR_1, not_accepted_yet(2)], ERROR_1),
    "otherwise the least advanced part": ([DELIVERED_1, SENT_2, DELIVERED_3], SENT_2),
    "equally advanced: the first": ([RECEIVED_2, RECEIVED_1], RECEIVED_1),
    "a reported UNKNOWN is ahead of SENT": ([SENT_1, UNKNOWN_2], SENT_1),
    "a part not accepted yet holds it back": ([DELIVERED_1, not_accepted_yet(2)], not_accepted_yet(2)),
}


@pytest.mark.parametrize("case", AGGREGATES)
def test_aggregate(case: str) -> None:
    parts, expected = AGGREGATES[case]
    assert aggregate(parts) == expected


def test_a_part_not_accepted_yet_counts_as_queued() -> None:
    assert not_accepted_yet(3) == PartState(3, S.UNKNOWN, Rank.QUEUED, "Queued", None)


REPORTS: dict[str, tuple[list[PartState], ReportedStatus]] = {
    "a delivered part": ([DELIVERED_1], ReportedStatus(S.DELIVERED, "delivered 1")),
    "every part delivered": (
        [DELIVERED_1, DELIVERED_2],
        ReportedStatus(S.DELIVERED, "delivered 1 (all 2 parts)"),
    ),
    "a failed part, with its code": (
        [DELIVERED_1, ERROR_2],
        ReportedStatus(S.ERROR, "error 2", "smpp-err:001"),
    ),
    "a reported UNKNOWN, not queued": ([UNKNOWN_2], ReportedStatus(S.UNKNOWN, "unknown 2")),
    "a part not accepted yet: queued": (
        [DELIVERED_1, not_accepted_yet(2)],
        ReportedStatus(S.UNKNOWN, "Queued", queued=True),
    ),
}


@pytest.mark.parametrize("case", REPORTS)
def test_message_report(case: str) -> None:
    parts, expected = REPORTS[case]
    assert message_report(parts) == expected


@pytest.mark.parametrize("rank", list(Rank))
def test_a_message_with_a_part_not_accepted_yet_does_not_change(rank: Rank) -> None:
    report = message_report([DELIVERED_1, not_accepted_yet(2)])
    assert not decide(CurrentState(S.UNKNOWN, rank), report).changes_status


@pytest.mark.parametrize(
    ("part_no", "parts_total", "expected"),
    [
        (1, 1, "Delivered to the handset"),
        (1, 2, "Delivered to the handset (part 1)"),
        (2, 2, "Delivered to the handset (part 2)"),
        (3, 3, "Delivered to the handset (part 3)"),
    ],
)
def test_part_description(part_no: int, parts_total: int, expected: str) -> None:
    assert part_description("Delivered to the handset", part_no, parts_total) == expected
