"""Send endpoints: validate, store the message and its outbox item in one transaction, answer 202."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

import msgspec
from litestar import Controller, Response, post
from litestar.params import HeaderParameter, JSONBody
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.api.deps import CompanyId, RuntimeDep
from partner_gateway.api.problems import invalid, problem_responses
from partner_gateway.api.schemas import (
    DeliveryStatusResponse,
    RcsSendRequest,
    SendRequest,
    SmsSendRequest,
    WhatsAppSendRequest,
)
from partner_gateway.domain import sending
from partner_gateway.domain.ids import new_message_id
from partner_gateway.domain.messages import NewMessage
from partner_gateway.domain.statuses import ACCEPTED_DESCRIPTION, Channel, DeliveryStatus
from partner_gateway.domain.timefmt import format_ms, now_ms
from partner_gateway.errors import IdempotencyConflict
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
SEND_PROBLEMS = problem_responses(400, 401, 413, 422, 500, 503)


class SendController(Controller):
    """The send operations as Litestar declares them (OpenAPI). The front (api/front.py) answers
    them with the same functions for bodies it can decode; these answer the rest."""

    tags = ["Send"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post(
        "/sms/messages",
        status_code=202,
        summary="Send an SMS",
        responses=SEND_PROBLEMS,
        operation_id="sendSms",
    )
    async def send_sms(
        self,
        data: JSONBody[SmsSendRequest],
        company_id: CompanyId,
        runtime: RuntimeDep,
        idempotency_key: IdempotencyKey,
    ) -> Response[DeliveryStatusResponse]:
        return (await accept_sms(runtime, company_id, data, idempotency_key)).response()

    @post(
        "/whatsapp/messages",
        status_code=202,
        summary="Send a WhatsApp message",
        responses=SEND_PROBLEMS,
        operation_id="sendWhatsApp",
    )
    async def send_whatsapp(
        self,
        data: JSONBody[WhatsAppSendRequest],
        company_id: CompanyId,
        runtime: RuntimeDep,
        idempotency_key: IdempotencyKey,
    ) -> Response[DeliveryStatusResponse]:
        return (await accept_whatsapp(runtime, company_id, data, idempotency_key)).response()

    @post(
        "/rcs/messages",
        status_code=202,
        summary="Send an RCS message",
        responses=SEND_PROBLEMS,
        operation_id="sendRcs",
    )
    async def send_rcs(
        self,
        data: JSONBody[RcsSendRequest],
        company_id: CompanyId,
        runtime: RuntimeDep,
        idempotency_key: IdempotencyKey,
    ) -> Response[DeliveryStatusResponse]:
        return (await accept_rcs(runtime, company_id, data, idempotency_key)).response()


@dataclass(frozen=True, slots=True)
class Accepted:
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


async def accept_sms(
    runtime: Runtime, company_id: str, data: SmsSendRequest, idempotency_key: str | None
) -> Accepted:
    common = _common_checks(Channel.SMS, data)
    problems = common.problems
    sending.check_sms_sender(data.from_, problems)
    text = sending.check_sms_text(data.text, problems)
    return await _accept(
        runtime, company_id, Channel.SMS, data, common, idempotency_key,
        sender=data.from_, encoding=text.encoding, segments=text.segments,
    )  # fmt: skip


async def accept_whatsapp(
    runtime: Runtime, company_id: str, data: WhatsAppSendRequest, idempotency_key: str | None
) -> Accepted:
    common = _common_checks(Channel.WHATSAPP, data)
    problems = common.problems
    if (data.text is None) == (data.template is None):
        problems.append(("text", "give either text (a session message) or template, not both"))
    sending.check_text(data.text, sending.WHATSAPP_TEXT_MAX, "text", problems)
    if data.template is not None:
        template = data.template
        sending.check_template(template.name, template.language, template.parameters, problems)
    return await _accept(runtime, company_id, Channel.WHATSAPP, data, common, idempotency_key)


async def accept_rcs(
    runtime: Runtime, company_id: str, data: RcsSendRequest, idempotency_key: str | None
) -> Accepted:
    common = _common_checks(Channel.RCS, data)
    problems = common.problems
    if (data.text is None) == (data.rich_card is None):
        problems.append(("text", "give either text or richCard, not both"))
    sending.check_text(data.text, sending.RCS_TEXT_MAX, "text", problems)
    suggestions = list(enumerate(data.suggestions))
    prefix = "suggestions"
    if data.rich_card is not None:
        card = data.rich_card
        if not (card.title or card.description or card.media_url):
            problems.append(("richCard", "needs a title, a description or a mediaUrl"))
        _check_url(card.media_url, "richCard.mediaUrl", problems)
        if data.suggestions:
            problems.append(("suggestions", "put a rich card's suggestions inside richCard"))
        suggestions, prefix = list(enumerate(card.suggestions)), "richCard.suggestions"
    for index, suggestion in suggestions:
        field = f"{prefix}[{index}]"
        if suggestion.type == "dial":
            if suggestion.phone_number is None:
                problems.append((f"{field}.phoneNumber", "is required for a dial suggestion"))
            else:
                nested: sending.Problems = []
                sending.check_destination(suggestion.phone_number, nested)
                problems.extend((f"{field}.phoneNumber", message) for _, message in nested)
        if suggestion.type == "openUrl":
            if suggestion.url is None:
                problems.append((f"{field}.url", "is required for an openUrl suggestion"))
            _check_url(suggestion.url, f"{field}.url", problems)
    if data.fallback_sms is not None:
        sending.check_sms_text(data.fallback_sms.text, problems, field="fallbackSms.text")
        sending.check_sms_sender(data.fallback_sms.from_, problems, field="fallbackSms.from")
    return await _accept(runtime, company_id, Channel.RCS, data, common, idempotency_key)


def _fields_with_nul(value: object, path: str = "") -> list[str]:
    """Fields holding U+0000, which no channel carries and PostgreSQL text cannot store."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        return [f for key, item in value.items() for f in _fields_with_nul(item, f"{path}.{key}".lstrip("."))]
    if isinstance(value, list):
        return [f for index, item in enumerate(value) for f in _fields_with_nul(item, f"{path}[{index}]")]
    return []


def _check_url(url: str | None, field: str, problems: sending.Problems) -> None:
    if url is not None and not url.startswith(("https://", "http://")):
        problems.append((field, "must be an http(s) URL"))


@dataclass(frozen=True, slots=True)
class _Common:
    """What every channel checks, with the normalised values the message is stored with."""

    problems: sending.Problems
    to: str
    validity_seconds: int


def _common_checks(channel: Channel, data: SendRequest) -> _Common:
    problems: sending.Problems = [
        (field, "must not contain the NUL character") for field in _fields_with_nul(msgspec.to_builtins(data))
    ]
    to = sending.check_destination(data.to, problems)
    validity = sending.check_validity(channel, data.validity_seconds, problems)
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
    *,
    sender: str | None = None,
    encoding: str | None = None,
    segments: int | None = None,
) -> Accepted:
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
    body = msgspec.json.encode(data)
    message = NewMessage(
        id=new_message_id(now),
        company_id=company_id,
        channel=channel,
        to=to,
        sender=sender,
        reference=data.reference,
        created_at=now,
        expires_at=now + validity * 1000,
        callback_url=data.callback_url,
        body=body.decode(),
        encoding=encoding,
        segments=segments,
    )
    stamp = format_ms(now)
    answer = DeliveryStatusResponse(
        customer_message_id=message.id,
        channel=channel,
        to=to,
        reference=data.reference,
        delivery_status=DeliveryStatus.UNKNOWN,
        delivery_status_description=ACCEPTED_DESCRIPTION,
        error_code=None,
        created_at=stamp,
        updated_at=stamp,
        encoding="GSM7" if encoding == "GSM7" else "UCS2" if encoding == "UCS2" else None,
        segments=segments,
    )
    if idempotency_key is None:
        # Group-committed: many sends share one transaction and one fsync; each answer waits
        # until its own message is durable.
        await runtime.writes.accept(message)
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
            runtime.on_accepted()
            return _accepted(runtime, answer)
        if stored.request_hash != request_hash:
            raise IdempotencyConflict
        return _accepted(
            runtime, msgspec.json.decode(stored.body, type=DeliveryStatusResponse), replayed=True
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _accepted(runtime: Runtime, answer: DeliveryStatusResponse, *, replayed: bool = False) -> Accepted:
    base = runtime.settings.public_base_url or ""
    location = (
        f"{base.rstrip('/')}/partner-gateway/v1/messages/status/{answer.customer_message_id}"
        f"?channel={answer.channel.value}"
    )
    return Accepted(answer, location, replayed)
