"""Pure domain rules: E.164, time formats, the lifecycle precedence."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.domain.lifecycle import CurrentState, ReportedStatus, decide
from partner_gateway.domain.phone import InvalidNumber, normalize_e164
from partner_gateway.domain.statuses import DeliveryStatus, Rank, rank_of
from partner_gateway.domain.timefmt import format_ms, parse_date_or_datetime


@pytest.mark.parametrize("number", ["+4915112345678", "+14155552671", "+447911123456", "+33612345678"])
def test_valid_numbers(number: str) -> None:
    assert normalize_e164(number) == number


@pytest.mark.parametrize(
    "number",
    ["4915112345678", "+", "+0", "+49 151 12345678", "+49151123456789012", "+1555", "+٤٩١٥١١٢٣٤٥٦٧٨", ""],
)
def test_invalid_numbers(number: str) -> None:
    with pytest.raises(InvalidNumber):
        normalize_e164(number)


@given(st.text(max_size=30))
def test_normalize_never_raises_anything_else(text: str) -> None:
    with contextlib.suppress(InvalidNumber):
        assert normalize_e164(text).startswith("+")


def test_time_format() -> None:
    assert format_ms(0) == "1970-01-01T00:00:00.000Z"
    assert format_ms(1_795_000_000_123) == "2026-11-18T11:06:40.123Z"


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_format_parses_back(epoch_ms: int) -> None:
    assert parse_date_or_datetime(format_ms(epoch_ms)) == epoch_ms


@pytest.mark.parametrize("text", ["2026-11-27T10:15:30", "yesterday", "2026-11-27 10:15", "27.11.2026", ""])
def test_bad_dates(text: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        parse_date_or_datetime(text)


S = DeliveryStatus


def apply(reports: list[ReportedStatus]) -> tuple[DeliveryStatus, bool]:
    state = CurrentState(S.UNKNOWN, Rank.QUEUED)
    read = False
    for report in reports:
        transition = decide(state, report)
        if transition.changes_status:
            state = CurrentState(report.status, transition.new_rank)
        read = read or transition.sets_read
    return state.status, read


def test_late_sent_never_undoes_delivered() -> None:
    assert apply([ReportedStatus(S.DELIVERED, "d"), ReportedStatus(S.SENT, "s")]) == (S.DELIVERED, False)


def test_delivery_after_failure_is_believed_and_first_failure_stands() -> None:
    assert apply([ReportedStatus(S.ERROR, "e"), ReportedStatus(S.DELIVERED, "d")])[0] is S.DELIVERED
    assert apply([ReportedStatus(S.EXPIRED, "x"), ReportedStatus(S.ERROR, "e")])[0] is S.EXPIRED


def test_read_keeps_delivered_and_marks_read() -> None:
    assert apply([ReportedStatus(S.DELIVERED, "read", is_read=True)]) == (S.DELIVERED, True)


reports = st.builds(
    ReportedStatus,
    status=st.sampled_from(list(S)),
    description=st.just("x"),
    queued=st.booleans(),
)


@given(st.lists(reports, max_size=8))
def test_final_status_is_the_highest_ranked_first_report(sequence: list[ReportedStatus]) -> None:
    status, _ = apply(sequence)
    ranked = [(rank_of(r.status, queued=r.queued), -i, r.status) for i, r in enumerate(sequence)]
    expected = max(ranked)[2] if ranked and max(ranked)[0] > Rank.QUEUED else S.UNKNOWN
    assert status is expected
