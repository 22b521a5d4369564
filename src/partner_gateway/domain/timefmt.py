"""Time as the API shows it: RFC 3339, UTC, millisecond precision, `Z` suffix.

The store keeps integer milliseconds since the epoch: exact, portable across SQLite and
PostgreSQL, and cheap to compare in keyset pagination.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

DAY_CACHE_SIZE = 4096
"""Days whose `YYYY-MM-DDT` format_ms keeps: about 11 years, well under 1 MB."""

_HOURS_MINUTES = tuple(f"{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60))
_SECONDS = tuple(f"{second:02d}." for second in range(60))
_MILLIS = tuple(f"{millis:03d}Z" for millis in range(1000))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def format_ms(epoch_ms: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ`, from pieces looked up rather than formatted (about 0.3 µs).

    The date part comes from a small cache keyed by day, the time of day from tables; the
    output is exactly what formatting `time.gmtime` field by field gives.
    """
    seconds, millis = divmod(epoch_ms, 1000)
    days, second_of_day = divmod(seconds, 86_400)
    minute_of_day, second = divmod(second_of_day, 60)
    return f"{_day_prefix(days)}{_HOURS_MINUTES[minute_of_day]}{_SECONDS[second]}{_MILLIS[millis]}"


@lru_cache(maxsize=DAY_CACHE_SIZE)
def _day_prefix(days: int) -> str:
    """`YYYY-MM-DDT` of a day counted from the epoch."""
    stamp = time.gmtime(days * 86_400)
    return f"{stamp.tm_year:04d}-{stamp.tm_mon:02d}-{stamp.tm_mday:02d}T"


def parse_date_or_datetime(value: str) -> int:
    """An RFC 3339 date-time (offset required) or a plain date (midnight UTC), as epoch ms.

    Raises ValueError for anything else.
    """
    text = value.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        return (datetime(day.year, day.month, day.day, tzinfo=UTC) - _EPOCH) // _ONE_MS
    if "T" not in text and "t" not in text:
        raise ValueError("expected an RFC 3339 date-time or a date (YYYY-MM-DD)")
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("a date-time needs a UTC offset or the Z suffix")
    return (moment - _EPOCH) // _ONE_MS
