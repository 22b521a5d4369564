"""The message log (the history read with every filter, keyset pages both ways), one message's
page with its live timeline, and the test send form."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Response, get, post
from litestar.response import Redirect

from partner_gateway.api.callbacks import MessageCallbacksResponse, message_callbacks
from partner_gateway.api.deps import RuntimeDep
from partner_gateway.api.history import HistoryQuery, history_page
from partner_gateway.api.problems import ProblemError, to_problem
from partner_gateway.api.schemas import DeliveryStatusResponse, EventsResponse
from partner_gateway.api.sending import accept
from partner_gateway.api.status import message_events, status_of_one
from partner_gateway.console.common import (
    AnyRequest,
    PathText,
    changed,
    field,
    render,
    session_for_json,
    session_or_none,
    to_sign_in,
)
from partner_gateway.domain.rate_limits import Traffic
from partner_gateway.domain.statuses import FINAL_STATUSES
from partner_gateway.runtime import Runtime

DEFAULT_LIMIT = "50"
MAX_TRAIL = 20
"""Cursors of earlier pages carried in the log's URL for its Previous link; past this many the
oldest are dropped (Previous then stops short of the first page, which First always reaches)."""
FILTERS = ("startDate", "endDate", "channel", "deliveryStatus", "to", "limit")


def _filters(request: AnyRequest) -> dict[str, str]:
    """The log's filters from its query; an empty field is no filter, several statuses one list."""
    query = request.query_params
    values: dict[str, str] = {}
    for name in FILTERS:
        if name == "deliveryStatus":
            chosen = [item.strip() for item in query.getall(name, []) if item.strip()]
            if chosen:
                values[name] = ",".join(chosen)
            continue
        value = (query.get(name) or "").strip()
        if value:
            values[name] = value
    values.setdefault("limit", DEFAULT_LIMIT)
    return values


def _log_url(filters: dict[str, str], cursor: str | None, trail: list[str]) -> str:
    pairs: list[tuple[str, str]] = []
    for name, value in filters.items():
        if name == "deliveryStatus":
            pairs.extend((name, status) for status in value.split(","))
        else:
            pairs.append((name, value))
    if cursor:
        pairs.append(("cursor", cursor))
    pairs.extend(("back", item) for item in trail[-MAX_TRAIL:])
    return f"/console/messages?{urlencode(pairs)}"


@get("/messages")
async def message_log(request: AnyRequest, runtime: RuntimeDep) -> Response[str] | Redirect:
    session = await session_or_none(runtime, request)
    if session is None:
        return to_sign_in()
    filters = _filters(request)
    cursor = request.query_params.get("cursor") or None
    trail = list(request.query_params.getall("back", []))
    query = HistoryQuery(
        start_date=filters.get("startDate"),
        end_date=filters.get("endDate"),
        channel=filters.get("channel"),
        delivery_status=filters.get("deliveryStatus"),
        to=filters.get("to"),
        limit=filters.get("limit"),
        cursor=cursor,
    )
    errors: list[tuple[str, str]] = []
    items: list[DeliveryStatusResponse] = []
    next_url = previous_url = first_url = None
    try:
        history = await history_page(runtime, session.company_id, query)
    except ProblemError as problem:
        if problem.status != 400:
            raise
        errors = problem.errors or [("query", problem.detail)]
    else:
        items = history.items
        if history.next_cursor is not None:
            next_url = _log_url(filters, history.next_cursor, [*trail, cursor or ""])
        if cursor:
            first_url = _log_url(filters, None, [])
            if trail:
                previous_url = _log_url(filters, trail[-1] or None, trail[:-1])
    return await render(
        runtime,
        session,
        "messages.html",
        "messages",
        status_code=400 if errors else 200,
        filters=filters,
        chosen_statuses=filters.get("deliveryStatus", "").split(","),
        channels=runtime.channels.names,
        items=items,
        errors=errors,
        next_url=next_url,
        previous_url=previous_url,
        first_url=first_url,
    )


class MessageView(msgspec.Struct, rename="camel"):
    """What the message page shows, and what its script polls for."""

    status: DeliveryStatusResponse
    final: bool
    events: EventsResponse
    callbacks: MessageCallbacksResponse


async def _view(runtime: Runtime, company_id: str, channel: str, message_id: str) -> MessageView:
    """The message, its timeline and its callbacks through the API's own reads: another company's
    message (or a channel that is not served) is the same 404 problem as in the API."""
    try:
        status = await status_of_one(runtime, company_id, channel, message_id)
    except ProblemError as problem:
        if problem.status == 400:  # the channel in the path is no channel: no such message
            raise ProblemError(404, "not-found", f"No {channel} message with id {message_id!r}.") from None
        raise
    events = await message_events(runtime, company_id, channel, message_id)
    callbacks = await message_callbacks(runtime, company_id, channel, message_id)
    final = status.delivery_status in FINAL_STATUSES
    return MessageView(status=status, final=final, events=events, callbacks=callbacks)


@get("/messages/{channel:str}/{message_id:str}")
async def message_page(
    request: AnyRequest, runtime: RuntimeDep, channel: PathText, message_id: PathText
) -> Response[str] | Redirect:
    session = await session_or_none(runtime, request)
    if session is None:
        return to_sign_in()
    try:
        view = await _view(runtime, session.company_id, channel, message_id)
    except ProblemError as problem:
        if problem.status != 404:
            raise
        return await render(
            runtime, session, "not_found.html", "messages", status_code=404, detail=problem.detail
        )
    return await render(
        runtime,
        session,
        "message.html",
        "messages",
        view=msgspec.to_builtins(view),
        poll_url=f"/console/api/messages/{channel}/{message_id}",
    )


@get("/api/messages/{channel:str}/{message_id:str}")
async def message_json(
    request: AnyRequest, runtime: RuntimeDep, channel: PathText, message_id: PathText
) -> MessageView:
    session = await session_for_json(runtime, request)
    return await _view(runtime, session.company_id, channel, message_id)


SEND_FIELDS = ("channel", "to", "text", "reference")


@get("/send")
async def send_form(request: AnyRequest, runtime: RuntimeDep) -> Response[str] | Redirect:
    session = await session_or_none(runtime, request)
    if session is None:
        return to_sign_in()
    chosen = request.query_params.get("channel") or runtime.channels.names[0]
    return await render(
        runtime,
        session,
        "send.html",
        "send",
        channels=runtime.channels.names,
        values={"channel": chosen, "to": "", "text": "", "reference": ""},
        errors=[],
    )


@post("/send", status_code=303)
async def send(request: AnyRequest, runtime: RuntimeDep) -> Response[str] | Redirect:
    found = await changed(runtime, request)
    if found is None:
        return to_sign_in()
    session, form = found
    values = {name: field(form, name) for name in SEND_FIELDS}
    errors: list[tuple[str, str]] = []
    wanted = runtime.channels.find(values["channel"])
    if wanted is None:
        errors.append(("channel", f"must be one of {runtime.channels.choices}"))
    else:
        entry = runtime.channels[wanted]
        body: dict[str, Any] = {"to": values["to"], "text": values["text"]}
        if values["reference"]:
            body["reference"] = values["reference"]
        try:
            data = msgspec.convert(body, entry.request_type)
            # The API's accept path and its limits: a console send is a send like any other.
            runtime.rate_limits.admit(session.company_id, Traffic.SENDS)
            accepted = await accept(runtime, session.company_id, entry, data, None)
        except msgspec.ValidationError as error:
            errors.append(("body", str(error)))
        except Exception as error:  # the API's problems (400, 422, 429) are shown on the form
            problem = to_problem(error)
            if problem.status >= 500:
                raise
            errors.extend(problem.errors or [("", problem.detail)])
        else:
            answer = accepted.answer
            return Redirect(
                path=f"/console/messages/{answer.channel.value}/{answer.customer_message_id}", status_code=303
            )
    return await render(
        runtime,
        session,
        "send.html",
        "send",
        status_code=400,
        channels=runtime.channels.names,
        values=values,
        errors=errors,
    )
