"""What an HTTP provider's refusal means for a send: the kind its status implies, and its Retry-After.

Shared by the providers that speak HTTP (whatsapp/, rcs/). Each reads its own error codes first (its
table, as data in its folder) and falls back on the HTTP status, classified here once; the words
and the delays (how slowly to retry refused credentials) stay the provider's:

    HTTP status      HttpRefusal    SendError kind
    401, 403         CREDENTIALS    retry      our credentials are refused: nothing can be sent until
                                               an operator acts; keep the messages, retry slowly
    429              THROTTLED      throttled  the provider asked us to slow down (Retry-After when given)
    408, 5xx         UNAVAILABLE    retry      nothing was accepted; try again
    any other        REFUSED        permanent  refused for good

`retry_after_seconds` reads a Retry-After field value (RFC 9110 §10.2.3): None when there is none
to believe, so the caller's own default applies.
"""

from __future__ import annotations

import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Final

from partner_gateway.channels.base import SendErrorKind

MAX_RETRY_AFTER_SECONDS: Final = 2.0**31
"""The longest delay believed. RFC 9110 sets no bound on delay-seconds; like RFC 9111 §1.2.2 does
for its delta-seconds, a larger value counts as 2**31, so a huge one stays a finite float (the
dispatcher turns it into milliseconds) and still means "not within this message's validity"."""

_DIGITS_IN_MAX: Final = len(str(int(MAX_RETRY_AFTER_SECONDS)))
_OWS: Final = " \t"  # the optional whitespace around a field value (RFC 9110 §5.6.3)


class HttpRefusal(Enum):
    """What the status of a refused request says about the send (the module's table)."""

    CREDENTIALS = ("credentials", "retry")
    THROTTLED = ("throttled", "throttled")
    UNAVAILABLE = ("unavailable", "retry")
    REFUSED = ("refused", "permanent")

    def __init__(self, label: str, kind: SendErrorKind) -> None:
        self.label = label  # two classes share a kind: the label tells their values apart
        self.kind: SendErrorKind = kind


def refusal_for_status(status: int) -> HttpRefusal:
    """The class of a non-2xx answer by its HTTP status alone."""
    if status in (401, 403):
        return HttpRefusal.CREDENTIALS
    if status == 429:
        return HttpRefusal.THROTTLED
    if status == 408 or status >= 500:
        return HttpRefusal.UNAVAILABLE
    return HttpRefusal.REFUSED


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The delay a Retry-After field value asks for, in seconds (0.0 for a date already past), or
    None when the value is neither of the RFC 9110 §10.2.3 forms; it never raises.

    Retry-After = HTTP-date / delay-seconds, and delay-seconds = 1*DIGIT: a non-negative integer.
    A fractional value such as "1.5", a sign, an exponent or non-ASCII digits are not delay-seconds,
    so they are not believed (None): guessing what a sender outside the grammar meant is worse than
    the provider's documented default, which the caller then applies. `now` (Unix seconds, default
    the wall clock) is what an HTTP-date is counted from.
    """
    if value is None:
        return None
    text = value.strip(_OWS)
    if text.isascii() and text.isdigit():
        # Compared as text first: int() of a very long digit string is slow (or refused outright).
        if len(text.lstrip("0")) > _DIGITS_IN_MAX:
            return MAX_RETRY_AFTER_SECONDS
        return min(float(int(text)), MAX_RETRY_AFTER_SECONDS)
    return _seconds_until(text, time.time() if now is None else now)


def _seconds_until(http_date: str, now: float) -> float | None:
    """The seconds from `now` to an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime
    forms a recipient must also accept, RFC 9110 §5.6.7), or None when it is not one."""
    if not http_date or not http_date.isascii():
        return None
    try:
        moment = parsedate_to_datetime(http_date)
        if moment.tzinfo is None:  # the asctime form names no zone; an HTTP-date is always GMT
            moment = moment.replace(tzinfo=UTC)
        delay = moment.timestamp() - now
    except (ValueError, TypeError, OverflowError, IndexError):
        # parsedate_to_datetime raises ValueError for most text that is not a date; the others
        # are what its parts (datetime, timezone) raise for values no HTTP-date can hold.
        return None
    return min(max(0.0, delay), MAX_RETRY_AFTER_SECONDS)
