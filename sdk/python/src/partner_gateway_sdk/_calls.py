"""The API's operations as plain `Call`s, shared by the sync and the async client: what to send
and how to read the answer. Nothing here does I/O, so both clients run exactly these rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from partner_gateway_sdk.models import (
    CallbackDelivery,
    CallbackSettings,
    FallbackSms,
    HistoryPage,
    InboundPage,
    MessageStatus,
    OptOut,
    OptOutPage,
    RichCard,
    SentMessage,
    Stats,
    Suggestion,
    Timeline,
    WhatsAppTemplate,
)

API_PATH = "/partner-gateway/v1"
# Request targets the gateway serves are up to 65,535 bytes (docs/api.md), but a proxy in front
# may stop far sooner (nginx's default header buffer is 8 KiB): stay under 8,000 unless told.
DEFAULT_MAX_URL_LENGTH = 8_000
DEFAULT_QUERY_CHUNK = 1_000
MAX_QUERY_CHUNK = 10_000  # the gateway's default PARTNER_GATEWAY_MAX_QUERY_IDS


@dataclass(frozen=True)
class Call:
    """One request: `repeatable` says whether trying it again after an answer was lost is harmless
    (the retry rules, _retry.py)."""

    method: str
    path: str  # below API_PATH, query string included and already encoded
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    repeatable: bool = True


def api_prefix(base_url: httpx.URL) -> str:
    """The API's path under `base_url`: `http://host:8080` and `http://host:8080/partner-gateway/v1`
    both work."""
    path = base_url.path.rstrip("/")
    return path if path.endswith(API_PATH) else path + API_PATH


def base_url_of(base_url: str | httpx.URL) -> httpx.URL:
    url = httpx.URL(str(base_url))
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an absolute http(s) URL, not {str(base_url)!r}")
    return url.copy_with(path=api_prefix(url), query=None, fragment=None)


def segment(value: str) -> str:
    return quote(value, safe="")


def query(**params: str | None) -> str:
    """A query string of the given parameters (None ones left out), commas kept as commas: the
    gateway takes a list as one comma-separated value."""
    parts = [f"{name}={quote(value, safe=',')}" for name, value in params.items() if value is not None]
    return "?" + "&".join(parts) if parts else ""


# -- sending --------------------------------------------------------------------------------


def send_call(channel_path: str, body: dict[str, Any], idempotency_key: str | None) -> Call:
    """A send, with the caller's `Idempotency-Key` or a new one: the same key goes with every
    retry of this call, so a send whose answer was lost is answered, not sent again."""
    key = idempotency_key or str(uuid.uuid4())
    return Call(
        "POST",
        f"/{channel_path}/messages",
        json={name: value for name, value in body.items() if value is not None},
        headers={"Idempotency-Key": key},
        repeatable=True,
    )


def sms_body(
    to: str,
    text: str,
    sender: str | None,
    reference: str | None,
    validity_seconds: int | None,
    callback_url: str | None,
) -> dict[str, Any]:
    return {
        "to": to,
        "text": text,
        "from": sender,
        "reference": reference,
        "validitySeconds": validity_seconds,
        "callbackUrl": callback_url,
    }


def whatsapp_body(
    to: str,
    text: str | None,
    template: WhatsAppTemplate | None,
    reference: str | None,
    validity_seconds: int | None,
    callback_url: str | None,
) -> dict[str, Any]:
    if (text is None) == (template is None):
        raise ValueError("a WhatsApp message has either text or a template")
    return {
        "to": to,
        "text": text,
        "template": dict(template) if template is not None else None,
        "reference": reference,
        "validitySeconds": validity_seconds,
        "callbackUrl": callback_url,
    }


def rcs_body(
    to: str,
    text: str | None,
    suggestions: Iterable[Suggestion] | None,
    rich_card: RichCard | None,
    fallback_sms: FallbackSms | Mapping[str, str] | None,
    reference: str | None,
    validity_seconds: int | None,
    callback_url: str | None,
) -> dict[str, Any]:
    if (text is None) == (rich_card is None):
        raise ValueError("an RCS message has either text or a rich card")
    return {
        "to": to,
        "text": text,
        "suggestions": [dict(item) for item in suggestions] if suggestions is not None else None,
        "richCard": dict(rich_card) if rich_card is not None else None,
        "fallbackSms": dict(fallback_sms) if fallback_sms is not None else None,
        "reference": reference,
        "validitySeconds": validity_seconds,
        "callbackUrl": callback_url,
    }


def sent_message(call: Call, response: httpx.Response) -> SentMessage:
    status = MessageStatus.from_json(response.json())
    return SentMessage(
        **{name: getattr(status, name) for name in MessageStatus.__dataclass_fields__},
        location=response.headers.get("location"),
        idempotency_key=call.headers["Idempotency-Key"],
        replayed=response.headers.get("idempotent-replayed", "").lower() == "true",
        request_id=response.headers.get("x-request-id"),
    )


# -- look-ups -------------------------------------------------------------------------------


def status_call(message_id: str, channel: str) -> Call:
    return Call("GET", f"/messages/status/{segment(message_id)}" + query(channel=channel))


def events_call(message_id: str, channel: str) -> Call:
    return Call("GET", f"/messages/{segment(message_id)}/events" + query(channel=channel))


def callbacks_call(message_id: str, channel: str) -> Call:
    return Call("GET", f"/messages/{segment(message_id)}/callbacks" + query(channel=channel))


def timeline(response: httpx.Response) -> Timeline:
    return Timeline.from_json(response.json())


def callback_deliveries(response: httpx.Response) -> list[CallbackDelivery]:
    return [CallbackDelivery.from_json(item) for item in response.json().get("events", [])]


def unique_ids(ids: Iterable[str]) -> list[str]:
    """The ids as the gateway reads them: trimmed, empty ones dropped, each once, in order."""
    seen: dict[str, None] = {}
    for item in ids:
        if isinstance(item, str) and (trimmed := item.strip()):
            seen.setdefault(trimmed, None)
    return list(seen)


def status_calls(
    ids: list[str],
    channel: str,
    *,
    prefix: str,
    method: str,
    max_url_length: int,
    chunk_size: int,
) -> list[Call]:
    """The requests that look up `ids` (already unique): `get` in URL-sized GETs, `post` in
    `POST /messages/status/query` chunks of `chunk_size`, `auto` one GET when they all fit in
    one, else POST chunks."""
    if method not in ("auto", "get", "post"):
        raise ValueError("method is 'auto', 'get' or 'post'")
    if not 1 <= chunk_size <= MAX_QUERY_CHUNK:
        raise ValueError(f"chunk_size is 1 to {MAX_QUERY_CHUNK}")
    if not ids:
        return []
    if method != "post":
        gets = _url_sized_gets(ids, channel, prefix, max_url_length)
        if method == "get" or len(gets) == 1:
            return gets
    return [
        Call(
            "POST",
            "/messages/status/query",
            json={"channel": channel, "ids": ids[start : start + chunk_size]},
        )
        for start in range(0, len(ids), chunk_size)
    ]


def _url_sized_gets(ids: list[str], channel: str, prefix: str, max_url_length: int) -> list[Call]:
    """GETs whose request target (path and query, as bytes on the request line) is at most
    `max_url_length`, each holding as many ids as fit."""
    head = f"/messages/status?channel={quote(channel, safe='')}&ids="
    room = max_url_length - len((prefix + head).encode())
    calls: list[Call] = []
    batch: list[str] = []
    used = 0
    for item in ids:
        encoded = segment(item)
        cost = len(encoded) + (1 if batch else 0)  # the comma before it
        if len(encoded) > room:
            raise ValueError(f"an id of {len(encoded)} bytes does not fit a {max_url_length}-byte URL")
        if used + cost > room:
            calls.append(Call("GET", head + ",".join(batch)))
            batch, used, cost = [], 0, len(encoded)
        batch.append(encoded)
        used += cost
    calls.append(Call("GET", head + ",".join(batch)))
    return calls


def statuses(response: httpx.Response) -> list[MessageStatus]:
    return [MessageStatus.from_json(item) for item in response.json()]


def merged(ids: list[str], answers: Iterable[list[MessageStatus]]) -> list[MessageStatus]:
    """The answers of every chunk as one list in the order the ids were asked (the gateway's own
    order is none); ids that matched nothing are left out, as the gateway leaves them out."""
    found = {item.customer_message_id: item for answer in answers for item in answer}
    return [found[item] for item in ids if item in found]


# -- history --------------------------------------------------------------------------------


def date_param(value: datetime | date | str | None, name: str) -> str | None:
    """A history bound as the gateway reads it: an aware datetime in UTC, a date, or the caller's
    own string. A naive datetime is refused rather than guessed."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} needs a timezone (datetime.now(UTC), not datetime.now())")
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value.isoformat()


def history_call(
    *,
    start_date: datetime | date | str | None,
    end_date: datetime | date | str | None,
    channel: str | None,
    delivery_status: str | Iterable[str] | None,
    to: str | None,
    page_size: int,
    cursor: str | None,
) -> Call:
    statuses_param = (
        delivery_status
        if delivery_status is None or isinstance(delivery_status, str)
        else ",".join(delivery_status)
    )
    return Call(
        "GET",
        "/messages/history"
        + query(
            startDate=date_param(start_date, "start_date"),
            endDate=date_param(end_date, "end_date"),
            channel=channel,
            deliveryStatus=statuses_param,
            to=to,
            limit=str(page_size),
            cursor=cursor,
        ),
    )


def history_page(response: httpx.Response) -> HistoryPage:
    return HistoryPage.from_json(response.json())


# -- inbound, opt-outs, stats ---------------------------------------------------------------


def inbound_call(
    *,
    start_date: datetime | date | str | None,
    end_date: datetime | date | str | None,
    channel: str | None,
    sender: str | None,
    to: str | None,
    page_size: int,
    cursor: str | None,
) -> Call:
    return Call(
        "GET",
        "/messages/inbound"
        + query(
            startDate=date_param(start_date, "start_date"),
            endDate=date_param(end_date, "end_date"),
            channel=channel,
            **{"from": sender},
            to=to,
            limit=str(page_size),
            cursor=cursor,
        ),
    )


def inbound_page(response: httpx.Response) -> InboundPage:
    return InboundPage.from_json(response.json())


def opt_outs_call(*, channel: str | None, page_size: int, cursor: str | None) -> Call:
    return Call("GET", "/opt-outs" + query(channel=channel, limit=str(page_size), cursor=cursor))


def opt_out_page(response: httpx.Response) -> OptOutPage:
    return OptOutPage.from_json(response.json())


def opt_out_call(method: str, channel: str, number: str) -> Call:
    # GET, PUT and DELETE are each safe to repeat: a PUT or DELETE again leaves the list as the
    # first one did (its answer may differ: 200 for 201, 404 for 204; see the clients).
    return Call(method, f"/opt-outs/{segment(channel)}/{segment(number)}")


def opt_out(response: httpx.Response) -> OptOut:
    return OptOut.from_json(response.json())


def stats_call(
    *,
    start_date: datetime | date | str,
    end_date: datetime | date | str,
    channel: str | None,
    bucket: str | None,
) -> Call:
    return Call(
        "GET",
        "/messages/stats"
        + query(
            startDate=date_param(start_date, "start_date"),
            endDate=date_param(end_date, "end_date"),
            channel=channel,
            bucket=bucket,
        ),
    )


def stats(response: httpx.Response) -> Stats:
    return Stats.from_json(response.json())


# -- callbacks ------------------------------------------------------------------------------


def get_callback_settings_call() -> Call:
    return Call("GET", "/callbacks/settings")


def put_callback_settings_call(url: str | None, rotate_secret: bool) -> Call:
    # Not repeatable: the answer that makes a secret is the only one that ever shows it.
    return Call(
        "PUT", "/callbacks/settings", json={"url": url, "rotateSecret": rotate_secret}, repeatable=False
    )


def callback_settings(response: httpx.Response) -> CallbackSettings:
    return CallbackSettings.from_json(response.json())


def replay_call(since: datetime | date | str, until: datetime | date | str | None) -> Call:
    # Repeatable: a replay sets the window's events pending again; twice is the same state.
    return Call(
        "POST",
        "/callbacks/replay",
        json={
            name: value
            for name, value in (("since", date_param(since, "since")), ("until", date_param(until, "until")))
            if value is not None
        },
    )


def replayed(response: httpx.Response) -> int:
    return int(response.json()["replayed"])


Parse = Callable[[httpx.Response], Any]


class Paged(Protocol):
    """A page of any listing: its `next_cursor` asks for the next one (None on the last)."""

    @property
    def next_cursor(self) -> str | None: ...


PageT = TypeVar("PageT", bound=Paged)
PageCall = Callable[[str | None], Call]
"""The request of a listing's page, given the cursor (None for the first)."""
