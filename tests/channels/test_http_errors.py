"""The HTTP providers' shared reading of a refusal: its status's class, and Retry-After (RFC 9110)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.channels.http_errors import (
    MAX_RETRY_AFTER_SECONDS,
    HttpRefusal,
    refusal_for_status,
    retry_after_seconds,
)

NOW = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date


@pytest.mark.parametrize(
    ("status", "refusal", "kind"),
    [
        (401, HttpRefusal.CREDENTIALS, "retry"),
        (403, HttpRefusal.CREDENTIALS, "retry"),
        (429, HttpRefusal.THROTTLED, "throttled"),
        (408, HttpRefusal.UNAVAILABLE, "retry"),
        (500, HttpRefusal.UNAVAILABLE, "retry"),
        (502, HttpRefusal.UNAVAILABLE, "retry"),
        (503, HttpRefusal.UNAVAILABLE, "retry"),
        (599, HttpRefusal.UNAVAILABLE, "retry"),
        (400, HttpRefusal.REFUSED, "permanent"),
        (404, HttpRefusal.REFUSED, "permanent"),
        (409, HttpRefusal.REFUSED, "permanent"),
        (413, HttpRefusal.REFUSED, "permanent"),
        (302, HttpRefusal.REFUSED, "permanent"),  # redirects are not followed: not an answer to act on
    ],
)
def test_statuses_are_classified_by_what_to_do_next(status: int, refusal: HttpRefusal, kind: str) -> None:
    assert refusal_for_status(status) is refusal
    assert refusal.kind == kind


# (field value, seconds); None: not a value RFC 9110 §10.2.3 defines, so the caller's default applies
RETRY_AFTER_ROWS: list[tuple[str | None, float | None]] = [
    (None, None),
    ("", None),
    ("7", 7.0),
    ("0", 0.0),
    ("120", 120.0),
    ("007", 7.0),
    (" 7\t", 7.0),  # optional whitespace around the value
    ("1.5", None),  # delay-seconds is a whole number; see retry_after_seconds
    ("1.0", None),
    ("-1", None),
    ("+7", None),
    ("1e3", None),
    ("7 s", None),
    ("inf", None),
    ("nan", None),
    ("1_000", None),  # float() would take it
    ("٣", None),  # an Arabic-Indic three: a digit to str.isdigit, not to the grammar
    ("²", None),  # a superscript two: isdigit() but float() refuses it
    ("\xa07", None),  # a no-break space is not optional whitespace
    ("2147483648", MAX_RETRY_AFTER_SECONDS),
    ("99999999999", MAX_RETRY_AFTER_SECONDS),
    ("9" * 5000, MAX_RETRY_AFTER_SECONDS),  # longer than int() converts
    ("Sun, 06 Nov 1994 08:50:37 GMT", 60.0),  # IMF-fixdate
    ("Sunday, 06-Nov-94 08:50:37 GMT", 60.0),  # obsolete RFC 850 form
    ("Sun Nov  6 08:50:37 1994", 60.0),  # obsolete asctime form, in GMT though it says no zone
    ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # now
    ("Sun, 06 Nov 1994 07:49:37 GMT", 0.0),  # past: come back at once
    ("Sun, 06 Nov 2160 08:49:37 GMT", MAX_RETRY_AFTER_SECONDS),
    ("Sun, 32 Nov 1994 08:49:37 GMT", None),
    ("Sun, 06 Nov 99999 08:49:37 GMT", None),
    ("Sun, 06 Nov 1994 08:49:37 +9999", None),
    ("tomorrow", None),
]


@pytest.mark.parametrize(("value", "seconds"), RETRY_AFTER_ROWS)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, NOW) == seconds


def test_an_http_date_counts_from_the_wall_clock_by_default() -> None:
    assert retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0
    assert retry_after_seconds("Fri, 31 Dec 9999 23:59:59 GMT") == MAX_RETRY_AFTER_SECONDS


DATE_LIKE = st.from_regex(
    r"[A-Za-z]{3,9},? [0-9]{1,3}[ -][A-Za-z]{3}[ -][0-9]{1,6} [0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}( [A-Z0-9+-]{1,5})?",
    fullmatch=True,
)


@given(
    value=st.text(max_size=60) | st.from_regex(r"[ \t]*[0-9]{1,40}[ \t]*", fullmatch=True) | DATE_LIKE,
    now=st.floats(min_value=0, max_value=4e9),
)
def test_any_header_text_gives_a_bounded_delay_or_none(value: str, now: float) -> None:
    seconds = retry_after_seconds(value, now)
    assert seconds is None or 0.0 <= seconds <= MAX_RETRY_AFTER_SECONDS


@given(seconds=st.integers(min_value=0, max_value=2**31))
def test_delay_seconds_are_read_exactly(seconds: int) -> None:
    assert retry_after_seconds(str(seconds)) == float(seconds)
