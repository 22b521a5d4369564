"""Message history: keyset pages, newest first, with date, channel, status and destination filters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from litestar import Controller, Response, get
from litestar.params import QueryParameter

from partner_gateway.api.deps import CompanyId, RuntimeDep
from partner_gateway.api.problems import invalid, problem_responses

# The limits and parsers live in api/query_params.py (the other listings share them); their old
# names here stay importable.
from partner_gateway.api.query_params import DEFAULT_LIMIT as DEFAULT_LIMIT
from partner_gateway.api.query_params import MAX_LIMIT as MAX_LIMIT
from partner_gateway.api.query_params import (
    ChannelFilter,
    CreatedFrom,
    CreatedUntil,
    Cursor,
    Limit,
    decode_cursor,
    parse_channel,
    parse_date,
    parse_limit,
    parse_window,
)
from partner_gateway.api.schemas import HistoryPage
from partner_gateway.api.views import status_item
from partner_gateway.domain.messages import HistoryFilter
from partner_gateway.domain.phone import InvalidNumber, normalize_e164
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.messages import MessageRepository

E164_SHAPE = re.compile(r"\+[1-9][0-9]{6,14}")
STATUS_CHOICES = ", ".join(status.value for status in DeliveryStatus)
_parse_date = parse_date  # the old names, kept for the modules that import them from here
_parse_limit = parse_limit


class HistoryController(Controller):
    tags = ["History"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/messages/history",
        summary="Message history",
        description="Newest first (ties broken by id). Pass nextCursor back as cursor for the next "
        "page; the Link header carries the same URL. Paging is keyset based: a deep page costs what "
        "the first does, and messages arriving meanwhile are neither skipped nor repeated.",
        responses=problem_responses(400, 401, 429, 500, 503),
        operation_id="getMessageHistory",
    )
    async def history(
        self,
        company_id: CompanyId,
        runtime: RuntimeDep,
        start_date: CreatedFrom = None,
        end_date: CreatedUntil = None,
        channel: ChannelFilter = None,
        delivery_status: Annotated[
            str | None,
            QueryParameter(
                name="deliveryStatus", description=f"One or more, comma-separated: {STATUS_CHOICES}"
            ),
        ] = None,
        to: Annotated[str | None, QueryParameter(name="to", description="Destination in E.164")] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> Response[HistoryPage]:
        query = HistoryQuery(start_date, end_date, channel, delivery_status, to, limit, cursor)
        page = await history_page(runtime, company_id, query)
        headers: dict[str, str] = {}
        if page.next_cursor is not None:
            params = {name: value for name, value in query.parameters() if value is not None}
            params["cursor"] = page.next_cursor
            base = (runtime.settings.public_base_url or "").rstrip("/")
            headers["Link"] = f'<{base}/partner-gateway/v1/messages/history?{urlencode(params)}>; rel="next"'
        return Response(content=page, headers=headers)


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A history request's parameters as given (strings, or None when absent)."""

    start_date: str | None = None
    end_date: str | None = None
    channel: str | None = None
    delivery_status: str | None = None
    to: str | None = None
    limit: str | None = None
    cursor: str | None = None

    def parameters(self) -> list[tuple[str, str | None]]:
        """The filters by their query names (the cursor apart)."""
        return [
            ("startDate", self.start_date),
            ("endDate", self.end_date),
            ("channel", self.channel),
            ("deliveryStatus", self.delivery_status),
            ("to", self.to),
            ("limit", self.limit),
        ]


async def history_page(runtime: Runtime, company_id: str, query: HistoryQuery) -> HistoryPage:
    """One page of the company's history, or the 400 problem naming every bad parameter: the
    API's GET /messages/history and the console's message log."""
    problems: list[tuple[str, str]] = []
    start, end = parse_window(query.start_date, query.end_date, problems)
    wanted_channel = parse_channel(runtime, query.channel, problems)
    statuses = _parse_statuses(query.delivery_status, problems)
    destination = None
    to = query.to
    if to is not None:
        try:
            destination = normalize_e164(to.strip())
        except InvalidNumber as error:
            if E164_SHAPE.fullmatch(to.strip()):
                # Written as E.164 but no possible number: no message was sent there, so the
                # filter matches nothing (a send to it is refused), rather than a 400.
                destination = to.strip()
            else:
                problems.append(("to", str(error)))
    page_size = parse_limit(query.limit, problems)
    if problems:
        raise invalid(problems)

    filters = HistoryFilter(
        company_id=company_id,
        start=start,
        end=end,
        channel=wanted_channel,
        statuses=statuses,
        to=destination,
    )
    scope = _scope(filters)
    after = decode_cursor(runtime, company_id, scope, query.cursor)

    async with runtime.database.read() as connection:
        page = await MessageRepository(connection).history_page(filters, after, page_size, status_item)
    next_cursor = None
    if page.next_after is not None:
        next_cursor = runtime.cursors.encode(company_id, scope, page.next_after)
    return HistoryPage(items=page.items, next_cursor=next_cursor)


def _scope(filters: HistoryFilter) -> str:
    """The filters a cursor is bound to: a cursor from one query is refused by another."""
    statuses = ",".join(sorted(status.value for status in filters.statuses))
    channel = filters.channel.value if filters.channel else ""
    return f"{filters.start}|{filters.end}|{channel}|{statuses}|{filters.to or ''}"


def _parse_statuses(value: str | None, problems: list[tuple[str, str]]) -> tuple[DeliveryStatus, ...]:
    if value is None:
        return ()
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        problems.append(("deliveryStatus", f"must name one or more of {STATUS_CHOICES}"))
        return ()
    statuses: dict[DeliveryStatus, None] = {}
    for name in names:
        try:
            statuses.setdefault(DeliveryStatus(name), None)
        except ValueError:
            problems.append(("deliveryStatus", f"{name!r} is not one of {STATUS_CHOICES}"))
    return tuple(statuses)
