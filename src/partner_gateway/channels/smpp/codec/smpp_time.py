"""The SMPP time format `YYMMDDhhmmsstnnp`, absolute and relative (SMPP 3.4 §7.1.1)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_SMPP_TIME = re.compile(
    r"([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9])([0-9]{2})([-+R])"
)


def relative_validity(seconds: int) -> str:
    """SMPP relative time ``YYMMDDhhmmss000R`` for ``seconds`` (1 s up to 99 days 23:59:59)."""
    if not 0 < seconds < 100 * 86400:
        raise ValueError(f"relative validity must be 1 s to under 100 days, got {seconds} s")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"0000{days:02d}{hours:02d}{rest // 60:02d}{rest % 60:02d}000R"


def absolute_time(moment: datetime) -> str:
    """SMPP absolute time ``YYMMDDhhmmsst00+`` in UTC for an aware ``moment`` (years 2000-2099)."""
    utc = moment.astimezone(UTC)
    if not 2000 <= utc.year <= 2099:
        raise ValueError(f"SMPP times cover 2000-2099, got {utc.year}")
    return utc.strftime("%y%m%d%H%M%S") + f"{utc.microsecond // 100_000}00+"


def parse_smpp_time(value: str) -> datetime | timedelta | None:
    """Parse ``YYMMDDhhmmsstnnp``: None if empty, an aware UTC datetime for the absolute form
    (``nn`` quarter hours ahead of (+) or behind (-) UTC, ``YY`` is 20YY), a timedelta for the
    relative form (``R``; a year counts as 365 days and a month as 30, the usual SMSC reading).
    Raises ValueError for anything else."""
    if value == "":
        return None
    match = _SMPP_TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"not an SMPP time: {value!r}")
    yy, mo, dd, hh, mi, ss, tenths, quarters, sign = match.groups()
    if sign == "R":
        days = 365 * int(yy) + 30 * int(mo) + int(dd)
        return timedelta(days=days, hours=int(hh), minutes=int(mi), seconds=int(ss))
    if int(quarters) > 48:
        raise ValueError(f"UTC offset of {quarters} quarter hours in {value!r}")
    offset = timedelta(minutes=15 * int(quarters)) * (1 if sign == "+" else -1)
    local = datetime(2000 + int(yy), int(mo), int(dd), int(hh), int(mi), int(ss), 100_000 * int(tenths))
    return local.replace(tzinfo=timezone(offset)).astimezone(UTC)
