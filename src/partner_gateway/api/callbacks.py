"""Status callbacks (SPEC §5): a company's settings, a message's callbacks, and replay.

The settings: a company's default callback URL and its signing secret.

`GET /callbacks/settings` answers `{"url", "secretSet"}`; `PUT` sets or clears the URL and
answers the same, plus `secret` when that request made one (the first URL, or `rotateSecret`):
the only answer that ever carries it. A URL is checked by SPEC §5's rules, resolution included
(callbacks/urls.py), and refused with a 400 naming `url` and the reason.

`GET /messages/{id}/callbacks?channel=` lists a message's events with every attempt (another
company's message is 404, as for every look-up); `POST /callbacks/replay` queues the company's
events of a window again (the same bodies and eventIds), for a partner back from an outage.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, post, put
from litestar.params import JSONBody, PathParameter, QueryParameter

from partner_gateway.api.deps import CompanyId, RuntimeDep
from partner_gateway.api.problems import invalid, not_found, problem_responses
from partner_gateway.api.views import require_channel
from partner_gateway.callbacks.urls import RefusedUrl
from partner_gateway.domain import sending
from partner_gateway.domain.ids import could_be_message_id
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import format_ms, now_ms, parse_date_or_datetime
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import callback_deliveries
from partner_gateway.store.repositories.callback_settings import CallbackSettingsRepository

SETTINGS_PATH = "/callbacks/settings"


class CallbackSettingsUpdate(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    url: Annotated[
        str | None,
        msgspec.Meta(
            description="The company's default callback URL: absolute http(s), public host; null clears it "
            "(the secret is kept)"
        ),
    ]
    rotate_secret: Annotated[
        bool,
        msgspec.Meta(description="Make a new signing secret; the previous one signs too for 24 hours"),
    ] = False


class CallbackSettingsResponse(msgspec.Struct, rename="camel", omit_defaults=True):
    url: str | None
    secret_set: Annotated[bool, msgspec.Meta(description="Whether the company has a signing secret")]
    secret: Annotated[
        str | None,
        msgspec.Meta(description="The signing secret this request made; shown only in this answer"),
    ] = None


async def check_callback_url(runtime: Runtime, url: str, field: str, problems: sending.Problems) -> None:
    """Add a problem for `field` when `url` is not one the gateway may push to (resolved, with
    the process's short cache of host answers)."""
    try:
        await runtime.callback_urls.check(url)
    except RefusedUrl as refused:
        problems.append((field, refused.reason))


class CallbackSettingsController(Controller):
    tags = ["Callbacks"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        SETTINGS_PATH,
        summary="Callback settings",
        description="The company's default callback URL and whether it has a signing secret (the secret "
        "itself is shown only when it is made).",
        responses=problem_responses(401, 429, 500, 503),
        operation_id="getCallbackSettings",
    )
    async def read(self, company_id: CompanyId, runtime: RuntimeDep) -> CallbackSettingsResponse:
        return await read_callback_settings(runtime, company_id)

    @put(
        SETTINGS_PATH,
        summary="Set callback settings",
        description="Set the default callback URL (`null` clears it and keeps the secret). The answer "
        "carries `secret` when this request made one: the first time a URL is set, or with "
        "`rotateSecret`. After a rotation every callback is signed with the new and the previous "
        "secret for 24 hours.",
        responses=problem_responses(400, 401, 429, 500, 503),
        operation_id="setCallbackSettings",
    )
    async def update(
        self,
        company_id: CompanyId,
        runtime: RuntimeDep,
        data: JSONBody[CallbackSettingsUpdate],
    ) -> CallbackSettingsResponse:
        return await update_callback_settings(runtime, company_id, data)


async def read_callback_settings(runtime: Runtime, company_id: str) -> CallbackSettingsResponse:
    """GET /callbacks/settings, and the console's callback page."""
    async with runtime.database.read() as connection:
        settings = await CallbackSettingsRepository(connection, runtime.callback_secrets).get(company_id)
    if settings is None:
        return CallbackSettingsResponse(url=None, secret_set=False)
    return CallbackSettingsResponse(url=settings.url, secret_set=settings.secret_set)


async def update_callback_settings(
    runtime: Runtime, company_id: str, data: CallbackSettingsUpdate
) -> CallbackSettingsResponse:
    """PUT /callbacks/settings, and the console's callback form: a refused URL is a 400 problem."""
    if data.url is not None:
        problems: sending.Problems = []
        await check_callback_url(runtime, data.url, "url", problems)
        if problems:
            raise invalid(problems)
    async with runtime.database.write() as connection:
        change = await CallbackSettingsRepository(connection, runtime.callback_secrets).set_url(
            company_id, data.url, now_ms(), rotate_secret=data.rotate_secret
        )
    return CallbackSettingsResponse(
        url=change.settings.url, secret_set=change.settings.secret_set, secret=change.new_secret
    )


CallbackState = Literal["PENDING", "DELIVERED", "GIVEN_UP"]
_STATES: dict[str, CallbackState] = {
    callback_deliveries.PENDING: "PENDING",
    callback_deliveries.DELIVERED: "DELIVERED",
    callback_deliveries.GIVEN_UP: "GIVEN_UP",
}
MAX_REPLAY_DAYS = 31


class CallbackAttemptResponse(msgspec.Struct, rename="camel"):
    attempted_at: str
    url: str
    response_status: Annotated[
        int | None, msgspec.Meta(description="The partner's HTTP status, if it answered")
    ]
    error: Annotated[str | None, msgspec.Meta(description="Why there was no answer, if there was none")]
    duration_ms: int


class CallbackEventResponse(msgspec.Struct, rename="camel"):
    event_id: str
    sequence: int
    occurred_at: str
    state: Annotated[
        CallbackState,
        msgspec.Meta(
            description="PENDING (to be tried), DELIVERED (a 2xx answer) or GIVEN_UP (retry window over)"
        ),
    ]
    next_attempt_at: Annotated[str | None, msgspec.Meta(description="When it is tried next, while PENDING")]
    attempts: list[CallbackAttemptResponse]


class MessageCallbacksResponse(msgspec.Struct, rename="camel"):
    customer_message_id: str
    channel: Channel
    events: list[CallbackEventResponse]


class CallbackReplayRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    since: Annotated[
        str, msgspec.Meta(description="Events that occurred from (inclusive): RFC 3339 or a date")
    ]
    until: Annotated[
        str | None, msgspec.Meta(description="Events that occurred before (exclusive); default: now")
    ] = None


class CallbackReplayResponse(msgspec.Struct, rename="camel"):
    replayed: Annotated[int, msgspec.Meta(description="How many events were queued again")]


class MessageCallbacksController(Controller):
    tags = ["Callbacks"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/messages/{customerMessageId:str}/callbacks",
        summary="Callbacks of one message",
        description="Every status callback event of the message, by sequence, with every attempt; "
        "nextAttemptAt for an event not delivered yet.",
        responses=problem_responses(400, 401, 404, 500, 503),
        operation_id="getMessageCallbacks",
    )
    async def message_callbacks(
        self,
        customerMessageId: Annotated[str, PathParameter(description="The id the send answered with")],
        channel: Annotated[
            str,
            # Its `enum` is the registry's channels, set on the whole document (api/app.py).
            QueryParameter(name="channel", description="The channel the message was sent on"),
        ],
        company_id: CompanyId,
        runtime: RuntimeDep,
    ) -> MessageCallbacksResponse:
        return await message_callbacks(runtime, company_id, channel, customerMessageId)

    @post(
        "/callbacks/replay",
        summary="Send callbacks again",
        description="Queue the company's callback events that occurred in a window again, delivered "
        "or given up alike: the same bodies and eventIds, due now, with a new 24-hour retry window. "
        f"For a partner back from an outage longer than the retry window. At most {MAX_REPLAY_DAYS} "
        "days per request.",
        responses=problem_responses(400, 401, 500, 503),
        operation_id="replayCallbacks",
        status_code=202,
    )
    async def replay(
        self, company_id: CompanyId, runtime: RuntimeDep, data: JSONBody[CallbackReplayRequest]
    ) -> CallbackReplayResponse:
        now = now_ms()
        problems: list[tuple[str, str]] = []
        since = _moment(data.since, "since", problems)
        until = _moment(data.until, "until", problems) if data.until is not None else now
        if since is not None and until is not None:
            if until <= since:
                problems.append(("until", "must be after since"))
            elif until - since > MAX_REPLAY_DAYS * 86_400_000:
                problems.append(("until", f"must be at most {MAX_REPLAY_DAYS} days after since"))
        if problems or since is None:
            raise invalid(problems)
        async with runtime.database.write() as connection:
            replayed = await callback_deliveries.replay(connection, company_id, since, until, now)
        return CallbackReplayResponse(replayed=replayed)


def _moment(value: str, field: str, problems: list[tuple[str, str]]) -> int | None:
    try:
        return parse_date_or_datetime(value)
    except ValueError:
        problems.append((field, "must be an RFC 3339 date-time with an offset, or a date (YYYY-MM-DD)"))
        return None


async def message_callbacks(
    runtime: Runtime, company_id: str, channel: str | None, customer_message_id: str
) -> MessageCallbacksResponse:
    """One message's callback events with every attempt, or the 400 (channel) or 404 problem:
    GET /messages/{id}/callbacks and the console's message page."""
    wanted = require_channel(runtime.channels, channel)
    events = None
    if could_be_message_id(customer_message_id):
        async with runtime.database.read() as connection:
            events = await callback_deliveries.message_callbacks(
                connection, company_id, wanted, customer_message_id
            )
    if events is None:
        raise not_found(f"No {wanted.value} message with id {customer_message_id!r}.")
    return MessageCallbacksResponse(
        customer_message_id=customer_message_id,
        channel=wanted,
        events=[
            CallbackEventResponse(
                event_id=event.event_id,
                sequence=event.sequence,
                occurred_at=format_ms(event.occurred_at),
                state=_STATES[event.state],
                next_attempt_at=format_ms(event.next_attempt_at)
                if event.next_attempt_at is not None
                else None,
                attempts=[
                    CallbackAttemptResponse(
                        attempted_at=format_ms(attempt.attempted_at),
                        url=attempt.url,
                        response_status=attempt.response_status,
                        error=attempt.error,
                        duration_ms=attempt.duration_ms,
                    )
                    for attempt in event.attempts
                ],
            )
            for event in events
        ],
    )
