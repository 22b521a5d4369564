"""The query parameters the listing endpoints share (history, inbound, stats, opt-outs), declared
once, and their parsers: each appends its problems to the request's list, so one 400 names every
wrong parameter at once.

Every parameter is taken as a string and parsed here rather than typed for Litestar, so a wrong
value is our problem+json (api/problems.py) with our wording, not the framework's. The date
bounds' descriptions name the field they filter on (createdAt, receivedAt), hence one alias per
field.
"""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

from partner_gateway.api.cursor import InvalidCursor
from partner_gateway.api.problems import invalid
from partner_gateway.domain.messages import HistoryPosition
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import parse_date_or_datetime
from partner_gateway.runtime import Runtime

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_BOUND_FORMS = "RFC 3339 or YYYY-MM-DD"

Problems = list[tuple[str, str]]


def _from(field: str) -> QueryParameter:
    return QueryParameter(name="startDate", description=f"{field} from (inclusive): {_BOUND_FORMS}")


def _until(field: str) -> QueryParameter:
    return QueryParameter(name="endDate", description=f"{field} until (exclusive): {_BOUND_FORMS}")


CreatedFrom = Annotated[str | None, _from("createdAt")]
CreatedUntil = Annotated[str | None, _until("createdAt")]
ReceivedFrom = Annotated[str | None, _from("receivedAt")]
ReceivedUntil = Annotated[str | None, _until("receivedAt")]
ChannelFilter = Annotated[
    str | None,
    # Its `enum` is the registry's channels, set on the whole document (api/app.py).
    QueryParameter(name="channel", description="Only this channel's messages"),
]
Limit = Annotated[
    str | None,
    QueryParameter(name="limit", description=f"Page size, 1 to {MAX_LIMIT}, default {DEFAULT_LIMIT}"),
]
Cursor = Annotated[str | None, QueryParameter(name="cursor", description="nextCursor of the previous page")]


def parse_date(value: str | None, field: str, problems: Problems) -> int | None:
    """A bound as epoch ms, None when absent (or wrong: then a problem is added)."""
    if value is None:
        return None
    try:
        return parse_date_or_datetime(value)
    except (ValueError, OverflowError):
        problems.append(
            (field, "must be an RFC 3339 date-time (2026-11-27T10:15:30Z) or a date (2026-11-27)")
        )
        return None


def parse_window(
    start_date: str | None, end_date: str | None, problems: Problems
) -> tuple[int | None, int | None]:
    """startDate and endDate, each optional, the start not after the end (an empty window is
    allowed: it matches nothing)."""
    start = parse_date(start_date, "startDate", problems)
    end = parse_date(end_date, "endDate", problems)
    if start is not None and end is not None and start > end:
        problems.append(("startDate", "must not be after endDate"))
    return start, end


def parse_channel(runtime: Runtime, value: str | None, problems: Problems) -> Channel | None:
    """The channel filter; present and empty is a wrong channel, not no filter."""
    if value is None:
        return None
    found = runtime.channels.find(value)
    if found is None:
        problems.append(("channel", f"must be one of {runtime.channels.choices}"))
    return found


def parse_limit(value: str | None, problems: Problems) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        problems.append(("limit", f"must be an integer from 1 to {MAX_LIMIT}"))
        return DEFAULT_LIMIT
    return int(value)


def decode_cursor(
    runtime: Runtime, company_id: str, scope: str, cursor: str | None
) -> HistoryPosition | None:
    """The position a page's `cursor` resumes after (None without one); a 400 when it is not
    this company's or was made with other filters (`scope`)."""
    if not cursor:
        return None
    try:
        return runtime.cursors.decode(company_id, scope, cursor)
    except InvalidCursor as error:
        raise invalid([("cursor", f"{error}; start again without a cursor")]) from None
