"""What users sent: `GET /messages/inbound`, keyset pages newest first, with the history's
filters (startDate/endDate on receivedAt, channel, from, to). A company sees its own inbound
messages only: those to the numbers, short codes, WhatsApp numbers and RBM agents assigned to it."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Response, get
from litestar.params import QueryParameter

from partner_gateway.api.deps import CompanyId, RuntimeDep
from partner_gateway.api.problems import invalid, problem_responses
from partner_gateway.api.query_params import (
    ChannelFilter,
    Cursor,
    Limit,
    ReceivedFrom,
    ReceivedUntil,
    decode_cursor,
    parse_channel,
    parse_limit,
    parse_window,
)
from partner_gateway.domain.inbound import MAX_NUMBER, InboundMessageResponse, display_number
from partner_gateway.store.repositories.inbound import InboundFilter, inbound_page

PATH = "/messages/inbound"


class InboundPage(msgspec.Struct, rename="camel"):
    items: list[InboundMessageResponse]
    next_cursor: str | None


def _address(value: str | None, field: str, problems: list[tuple[str, str]]) -> str | None:
    if value is None:
        return None
    if not value.strip() or len(value) > MAX_NUMBER or not value.isprintable():
        problems.append(
            (field, f"must be a number, short code or agent id of at most {MAX_NUMBER} characters")
        )
        return None
    return value.strip()


class InboundController(Controller):
    tags = ["Inbound"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        PATH,
        summary="Inbound messages",
        description="What users sent to the company's numbers, short codes, WhatsApp numbers and RBM "
        "agents: newest first (ties broken by id). Pass nextCursor back as cursor for the next page; "
        "the Link header carries the same URL. Each is also pushed as an `inbound` callback event.",
        responses=problem_responses(400, 401, 429, 500, 503),
        operation_id="getInboundMessages",
    )
    async def inbound(
        self,
        company_id: CompanyId,
        runtime: RuntimeDep,
        start_date: ReceivedFrom = None,
        end_date: ReceivedUntil = None,
        channel: ChannelFilter = None,
        sender: Annotated[
            str | None, QueryParameter(name="from", description="Only from this user (E.164)")
        ] = None,
        to: Annotated[
            str | None,
            QueryParameter(
                name="to", description="Only to this number, short code, WhatsApp number or agent"
            ),
        ] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> Response[InboundPage]:
        problems: list[tuple[str, str]] = []
        start, end = parse_window(start_date, end_date, problems)
        wanted_channel = parse_channel(runtime, channel, problems)
        from_number = _address(sender, "from", problems)
        to_number = _address(to, "to", problems)
        page_size = parse_limit(limit, problems)
        if problems:
            raise invalid(problems)
        filters = InboundFilter(
            company_id=company_id,
            start=start,
            end=end,
            channel=wanted_channel,
            sender=display_number(from_number) if from_number is not None else None,
            recipient=to_number,
        )
        scope = f"inbound|{start}|{end}|{channel or ''}|{filters.sender or ''}|{to_number or ''}"
        after = decode_cursor(runtime, company_id, scope, cursor)
        async with runtime.database.read() as connection:
            items, next_after = await inbound_page(connection, filters, after, page_size)
        next_cursor = None
        headers: dict[str, str] = {}
        if next_after is not None:
            next_cursor = runtime.cursors.encode(company_id, scope, next_after)
            params = {
                key: value
                for key, value in (
                    ("startDate", start_date),
                    ("endDate", end_date),
                    ("channel", channel),
                    ("from", sender),
                    ("to", to),
                    ("limit", limit),
                )
                if value is not None
            }
            params["cursor"] = next_cursor
            base = (runtime.settings.public_base_url or "").rstrip("/")
            headers["Link"] = f'<{base}/partner-gateway/v1{PATH}?{urlencode(params)}>; rel="next"'
        return Response(content=InboundPage(items=items, next_cursor=next_cursor), headers=headers)
