"""A company's opt-out lists: `GET /opt-outs` (pages by channel and number), and one entry's
`GET`, `PUT` (add) and `DELETE` (remove) at `/opt-outs/{channel}/{number}`.

An inbound STOP (or a synonym) adds its sender for that channel, START or UNSTOP removes it
(store/repositories/inbound.py); a send to a number on the list ends ERROR `gw:opted-out`
before any provider sees it (dispatch/handover.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, put
from litestar.params import PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from partner_gateway.api.deps import CompanyId, RuntimeDep
from partner_gateway.api.problems import invalid, not_found, problem_responses
from partner_gateway.api.query_params import Cursor, Limit, decode_cursor, parse_channel, parse_limit
from partner_gateway.domain.inbound import display_number, normalize_number
from partner_gateway.domain.messages import HistoryPosition
from partner_gateway.domain.phone import InvalidNumber, normalize_e164
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import format_ms, now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import inbound as store

PATH = "/opt-outs"
ENTRY_PATH = "/opt-outs/{channel:str}/{number:str}"


class OptOutResponse(msgspec.Struct, rename="camel"):
    channel: Channel
    number: Annotated[str, msgspec.Meta(description="The destination, E.164")]
    source: Annotated[str, msgspec.Meta(description="keyword (the user sent STOP or a synonym) or api")]
    created_at: str


class OptOutPage(msgspec.Struct, rename="camel"):
    items: list[OptOutResponse]
    next_cursor: str | None


def _entry(entry: store.OptOutEntry) -> OptOutResponse:
    return OptOutResponse(
        entry.channel, display_number(entry.number), entry.source, format_ms(entry.created_at)
    )


def _target(runtime: Runtime, channel: str, number: str) -> tuple[Channel, str]:
    problems: list[tuple[str, str]] = []
    found = runtime.channels.find(channel)
    if found is None:
        problems.append(("channel", f"must be one of {runtime.channels.choices}"))
    try:
        e164 = normalize_e164(number.strip())
    except InvalidNumber as error:
        problems.append(("number", str(error)))
        e164 = ""
    if problems or found is None:
        raise invalid(problems)
    return found, e164


async def _read(runtime: Runtime, company_id: str, channel: Channel, e164: str) -> store.OptOutEntry | None:
    async with runtime.database.read() as connection:
        entries = await store.opt_outs_of(
            connection, company_id, channel, None, 1, number=normalize_number(e164)
        )
    return entries[0] if entries else None


class OptOutsController(Controller):
    tags = ["Opt-outs"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        PATH,
        summary="Opt-out list",
        description="The destinations that will not get the company's messages, by channel then number. "
        "Pass nextCursor back as cursor for the next page.",
        responses=problem_responses(400, 401, 429, 500, 503),
        operation_id="getOptOuts",
    )
    async def list_opt_outs(
        self,
        company_id: CompanyId,
        runtime: RuntimeDep,
        channel: Annotated[
            str | None, QueryParameter(name="channel", description="Only this channel's")
        ] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> OptOutPage:
        problems: list[tuple[str, str]] = []
        wanted = parse_channel(runtime, channel, problems)
        size = parse_limit(limit, problems)
        if problems:
            raise invalid(problems)
        scope = f"opt-outs|{channel or ''}"
        after = None
        position = decode_cursor(runtime, company_id, scope, cursor)
        if position is not None:
            channel_name, _, number = position.message_id.partition("|")
            after = (channel_name, number)
        async with runtime.database.read() as connection:
            entries = await store.opt_outs_of(connection, company_id, wanted, after, size + 1)
        next_cursor = None
        if len(entries) > size:
            entries = entries[:size]
            last = entries[-1]
            next_cursor = runtime.cursors.encode(
                company_id, scope, HistoryPosition(0, f"{last.channel.value}|{last.number}")
            )
        return OptOutPage([_entry(entry) for entry in entries], next_cursor)

    @get(
        ENTRY_PATH,
        summary="One opt-out",
        description="Whether the number is on the company's opt-out list for the channel (404 if not).",
        responses=problem_responses(400, 401, 404, 429, 500, 503),
        operation_id="getOptOut",
    )
    async def get_opt_out(
        self,
        company_id: CompanyId,
        runtime: RuntimeDep,
        channel: Annotated[str, PathParameter(description="SMS, RCS or WHATSAPP")],
        number: Annotated[str, PathParameter(description="The destination, E.164")],
    ) -> OptOutResponse:
        wanted, e164 = _target(runtime, channel, number)
        entry = await _read(runtime, company_id, wanted, e164)
        if entry is None:
            raise not_found(f"{e164} is not on the opt-out list for {wanted.value}")
        return _entry(entry)

    @put(
        ENTRY_PATH,
        summary="Add an opt-out",
        description="Put the number on the company's opt-out list for the channel: 201 when added, 200 "
        "when it was there already. Messages to it then end ERROR gw:opted-out without being sent.",
        responses=problem_responses(400, 401, 429, 500, 503),
        operation_id="putOptOut",
        status_code=HTTP_200_OK,
    )
    async def put_opt_out(
        self,
        company_id: CompanyId,
        runtime: RuntimeDep,
        channel: Annotated[str, PathParameter(description="SMS, RCS or WHATSAPP")],
        number: Annotated[str, PathParameter(description="The destination, E.164")],
    ) -> Response[OptOutResponse]:
        wanted, e164 = _target(runtime, channel, number)
        async with runtime.database.write() as connection:
            added = await store.opt_out(connection, company_id, wanted, e164, "api", now_ms())
        entry = await _read(runtime, company_id, wanted, e164)
        assert entry is not None
        return Response(_entry(entry), status_code=HTTP_201_CREATED if added else HTTP_200_OK)

    @delete(
        ENTRY_PATH,
        summary="Remove an opt-out",
        description="Take the number off the company's opt-out list for the channel (404 if it was not on it).",
        responses=problem_responses(400, 401, 404, 429, 500, 503),
        operation_id="deleteOptOut",
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_opt_out(
        self,
        company_id: CompanyId,
        runtime: RuntimeDep,
        channel: Annotated[str, PathParameter(description="SMS, RCS or WHATSAPP")],
        number: Annotated[str, PathParameter(description="The destination, E.164")],
    ) -> None:
        wanted, e164 = _target(runtime, channel, number)
        async with runtime.database.write() as connection:
            removed = await store.opt_in(connection, company_id, wanted, e164)
        if not removed:
            raise not_found(f"{e164} is not on the opt-out list for {wanted.value}")
