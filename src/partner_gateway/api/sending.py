"""Send endpoints: validate, store the message and its outbox item in one transaction, answer 202.

One operation per channel of the registry (`POST /{path}/messages`), each checking the fields every
send has and then its channel's own rules (ChannelEntry.check).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import HeaderParameter, JSONBody
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.api.callbacks import check_callback_url
from partner_gateway.api.deps import CompanyId, RuntimeDep
from partner_gateway.api.problems import invalid, problem_responses
from partner_gateway.api.rate_limits.routes import TRAFFIC_OPT
from partner_gateway.api.schemas import DeliveryStatusResponse
from partner_gateway.api.views import status_item
from partner_gateway.channels.entry import ChannelEntry, SendFields, SendRequest
from partner_gateway.channels.registry import ChannelRegistry
from partner_gateway.domain import sending
from partner_gateway.domain.ids import new_message_id
from partner_gateway.domain.messages import NewMessage
from partner_gateway.domain.rate_limits import Traffic
from partner_gateway.domain.statuses import ACCEPTED_DESCRIPTION, Channel, DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.errors import IdempotencyConflict
from partner_gateway.observability.context import set_message
from partner_gateway.observability.metrics import message_accepted
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.idempotency import IdempotencyRepository, StoredResponse
from partner_gateway.store.repositories.messages import MessageRepository

IDEMPOTENCY_KEY_MAX = 255
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="Retries with the same key and body within 24 hours return the first answer "
        "and send nothing.",
        required=False,
    ),
]
SEND_PROBLEMS = problem_responses(400, 401, 413, 422, 429, 500, 503)


def send_route_handlers(channels: ChannelRegistry) -> list[HTTPRouteHandler]:
    """The send operations as Litestar declares them (OpenAPI), one per channel of the registry.
    The front (api/front.py) answers them with `accept` for bodies it can decode; these answer
    the rest."""
    return [_send_route(entry) for entry in channels]


def _send_route(entry: ChannelEntry[Any]) -> HTTPRouteHandler:
    async def send(
        data: SendRequest, company_id: str, runtime: Runtime, idempotency_key: str | None
    ) -> Response[DeliveryStatusResponse]:
        return (await accept(runtime, company_id, entry, data, idempotency_key)).response()

    # Litestar reads the body's type (and so the OpenAPI schema) from the annotations: the entry's.
    send.__annotations__ = {
        "data": JSONBody[entry.request_type],  # type: ignore[misc,name-defined]
        "company_id": CompanyId,
        "runtime": RuntimeDep,
        "idempotency_key": IdempotencyKey,
        "return": Response[DeliveryStatusResponse],
    }
    send.__name__ = send.__qualname__ = f"send_{entry.path}"
    return post(
        f"/{entry.path}/messages",
        status_code=202,
        summary=f"Send {entry.noun}",
        responses=SEND_PROBLEMS,
        operation_id=entry.operation_id,
        tags=["Send"],
        opt={TRAFFIC_OPT: Traffic.SENDS},  # counted against the company's sends (api/rate_limits)
    )(send)


@dataclass(frozen=True, slots=True)
class SendAnswer:
    """A send's answer: 202 with the message's status, where to look it up, and whether it is
    the replay of an earlier request with the same Idempotency-Key."""

    answer: DeliveryStatusResponse
    location: str
    replayed: bool = False

    def headers(self) -> dict[str, str]:
        headers = {"Location": self.location}
        if self.replayed:
            headers["Idempotent-Replayed"] = "true"
        return headers

    def response(self) -> Response[DeliveryStatusResponse]:
        return Response(content=self.answer, status_code=202, headers=self.headers())


async def accept(
    runtime: Runtime,
    company_id: str,
    entry: ChannelEntry[Any],
    data: SendRequest,
    idempotency_key: str | None,
) -> SendAnswer:
    """Check a send request (every problem at once: the common fields, then the channel's own
    rules), store the message with its outbox item, and answer 202."""
    common = _common_checks(entry, data)
    fields = entry.check(data, common.problems)
    if data.callback_url is not None and not any(field == "callbackUrl" for field, _ in common.problems):
        # SPEC §5's address rules; the host's answer is cached, and a send without callbackUrl
        # spends nothing here.
        await check_callback_url(runtime, data.callback_url, "callbackUrl", common.problems)
    return await _accept(runtime, company_id, entry.channel, data, common, idempotency_key, fields)


def _counted(message: NewMessage) -> None:
    """A message just committed: counted, and named in the request's log lines."""
    message_accepted(message.channel)
    set_message(message.id)


def _fields_with_nul(value: object, path: str = "") -> list[str]:
    """Fields holding U+0000, which no channel carries and PostgreSQL text cannot store."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        return [f for key, item in value.items() for f in _fields_with_nul(item, f"{path}.{key}".lstrip("."))]
    if isinstance(value, list):
        return [f for index, item in enumerate(value) for f in _fields_with_nul(item, f"{path}[{index}]")]
    return []


@dataclass(frozen=True, slots=True)
class _Common:
    """What every channel checks, with the normalised values the message is stored with."""

    problems: sending.Problems
    to: str
    validity_seconds: int


def _common_checks(entry: ChannelEntry[Any], data: SendRequest) -> _Common:
    problems: sending.Problems = [
        (field, "must not contain the NUL character") for field in _fields_with_nul(msgspec.to_builtins(data))
    ]
    to = sending.check_destination(data.to, problems)
    validity = sending.check_validity(entry.validity, entry.channel, data.validity_seconds, problems)
    sending.check_reference(data.reference, problems)
    sending.check_callback_url(data.callback_url, problems)
    return _Common(problems, to, validity)


async def _accept(
    runtime: Runtime,
    company_id: str,
    channel: Channel,
    data: SendRequest,
    common: _Common,
    idempotency_key: str | None,
    fields: SendFields,
) -> SendAnswer:
    if idempotency_key is not None and not (
        0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX
        and idempotency_key.isascii()
        and idempotency_key.isprintable()
    ):
        common.problems.append(
            ("Idempotency-Key", f"must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters")
        )
    if common.problems:
        raise invalid(common.problems)

    now = now_ms()
    to, validity = common.to, common.validity_seconds
    encoding, segments = fields.encoding, fields.segments
    body = msgspec.json.encode(data)
    message = NewMessage(
        id=new_message_id(now),
        company_id=company_id,
        channel=channel,
        to=to,
        sender=fields.sender,
        reference=data.reference,
        created_at=now,
        expires_at=now + validity * 1000,
        callback_url=data.callback_url,
        body=body.decode(),
        encoding=encoding,
        segments=segments,
    )
    answer = status_item(
        message.id, channel, to, data.reference, DeliveryStatus.UNKNOWN, ACCEPTED_DESCRIPTION, None,
        now, now, None, encoding, segments,
    )  # fmt: skip
    if idempotency_key is None:
        # Group-committed: many sends share one transaction and one fsync; each answer waits
        # until its own message is durable.
        await runtime.writes.accept(message)
        _counted(message)
        runtime.on_accepted()
        return _accepted(runtime, answer)

    request_hash = hashlib.sha256(channel.value.encode() + b"\x00" + body).hexdigest()
    key = idempotency_key

    async def accept_once(connection: AsyncConnection) -> StoredResponse | None:
        """The message, or the answer stored for this key before; in one transaction (savepoint)."""
        keys = IdempotencyRepository(connection)
        stored = await keys.find(company_id, key, now)
        if stored is None:
            await MessageRepository(connection).add_accepted(message)
            first_answer = StoredResponse(request_hash, message.id, 202, msgspec.json.encode(answer))
            await keys.remember(company_id, key, now, first_answer)
        return stored

    for attempt in range(2):
        try:
            stored = await runtime.writes.submit(accept_once)
        except IntegrityError:
            # Another request with the same key committed first (only possible on PostgreSQL,
            # where writers run concurrently): read what it stored.
            if attempt:
                raise
            continue
        if stored is None:  # committed just now
            _counted(message)
            runtime.on_accepted()
            return _accepted(runtime, answer)
        if stored.request_hash != request_hash:
            raise IdempotencyConflict
        return _accepted(
            runtime, msgspec.json.decode(stored.body, type=DeliveryStatusResponse), replayed=True
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _accepted(runtime: Runtime, answer: DeliveryStatusResponse, *, replayed: bool = False) -> SendAnswer:
    base = runtime.settings.public_base_url or ""
    location = (
        f"{base.rstrip('/')}/partner-gateway/v1/messages/status/{answer.customer_message_id}"
        f"?channel={answer.channel.value}"
    )
    return SendAnswer(answer, location, replayed)
