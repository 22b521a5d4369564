"""Time as the API shows it: RFC 3339, UTC, millisecond precision, `Z` suffix.

The store keeps integer milliseconds since the epoch: exact, portable across SQLite and
PostgreSQL, and cheap to compare in keyset pagination.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def format_ms(epoch_ms: int) -> str:
    seconds, millis = divmod(epoch_ms, 1000)
    stamp = time.gmtime(seconds)
    return (
        f"{stamp.tm_year:04d}-{stamp.tm_mon:02d}-{stamp.tm_mday:02d}T"
        f"{stamp.tm_hour:02d}:{stamp.tm_min:02d}:{stamp.tm_sec:02d}.{millis:03d}Z"
    )


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
