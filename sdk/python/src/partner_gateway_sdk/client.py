"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from types import TracebackType
from typing import Literal, Self

import httpx

from partner_gateway_sdk import _calls
from partner_gateway_sdk._base import DEFAULT_TIMEOUT, BaseClient
from partner_gateway_sdk._retry import RetryPolicy
from partner_gateway_sdk.errors import NotFoundError, error_from_response, transport_error
from partner_gateway_sdk.models import (
    CallbackDelivery,
    CallbackSettings,
    FallbackSms,
    HistoryPage,
    InboundMessage,
    InboundPage,
    MessageStatus,
    OptOut,
    OptOutPage,
    RichCard,
    SentMessage,
    Stats,
    StatsBucketSize,
    Suggestion,
    Timeline,
    WhatsAppTemplate,
)

LookupMethod = Literal["auto", "get", "post"]


class Client(BaseClient):
    """A Partner Gateway client for synchronous code; thread-safe, one per process is enough.

    >>> with Client("pgw_...", base_url="http://127.0.0.1:8080") as gateway:
    ...     sent = gateway.send_sms(to="+4915112345678", text="Hello")

    `api_key` and `base_url` default to `PARTNER_GATEWAY_API_KEY` and `PARTNER_GATEWAY_BASE_URL`.
    Each call is tried up to `max_retries` more times (docs/sdk.md: which failures, how long);
    `statuses` splits long id lists into requests of `max_url_length` bytes or
    `query_chunk_size` ids and runs up to `max_concurrency` of them at once in threads.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        max_url_length: int = _calls.DEFAULT_MAX_URL_LENGTH,
        query_chunk_size: int = _calls.DEFAULT_QUERY_CHUNK,
        max_concurrency: int = 4,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            retry=retry,
            max_url_length=max_url_length,
            query_chunk_size=query_chunk_size,
            max_concurrency=max_concurrency,
            headers=headers,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, follow_redirects=False)

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections (not those of an `http_client` passed in: its owner closes it)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # -- sending ----------------------------------------------------------------------------

    def send_sms(
        self,
        to: str,
        text: str,
        *,
        sender: str | None = None,
        reference: str | None = None,
        validity_seconds: int | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> SentMessage:
        """`POST /sms/messages`; `sender` is the API's `from`."""
        body = _calls.sms_body(to, text, sender, reference, validity_seconds, callback_url)
        return self._send(_calls.send_call("sms", body, idempotency_key))

    def send_whatsapp(
        self,
        to: str,
        *,
        text: str | None = None,
        template: WhatsAppTemplate | None = None,
        reference: str | None = None,
        validity_seconds: int | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> SentMessage:
        """`POST /whatsapp/messages`: a session `text` or an approved `template`."""
        body = _calls.whatsapp_body(to, text, template, reference, validity_seconds, callback_url)
        return self._send(_calls.send_call("whatsapp", body, idempotency_key))

    def send_rcs(
        self,
        to: str,
        *,
        text: str | None = None,
        suggestions: Iterable[Suggestion] | None = None,
        rich_card: RichCard | None = None,
        fallback_sms: FallbackSms | Mapping[str, str] | None = None,
        reference: str | None = None,
        validity_seconds: int | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> SentMessage:
        """`POST /rcs/messages`: `text` (with `suggestions`) or a `rich_card`; `fallback_sms`
        (`{"text": ..., "from": ...}`) goes as SMS when the destination cannot get RCS."""
        body = _calls.rcs_body(
            to, text, suggestions, rich_card, fallback_sms, reference, validity_seconds, callback_url
        )
        return self._send(_calls.send_call("rcs", body, idempotency_key))

    def _send(self, call: _calls.Call) -> SentMessage:
        response = self._execute(call)
        return self._read(response, lambda answer: _calls.sent_message(call, answer))

    # -- look-ups ---------------------------------------------------------------------------

    def status(self, message_id: str, channel: str) -> MessageStatus:
        """One message's status; NotFoundError unless it is yours and was sent on `channel`."""
        response = self._execute(_calls.status_call(message_id, channel))
        return self._read(response, lambda answer: MessageStatus.from_json(answer.json()))

    def statuses(
        self, ids: Iterable[str], channel: str, *, method: LookupMethod = "auto"
    ) -> list[MessageStatus]:
        """The statuses of any number of ids, in the order asked; ids matching none of your
        messages on `channel` are left out. The ids go in as few requests as fit (`method`:
        `auto` one GET when they fit in one URL, else POST chunks; `get` or `post` to choose),
        run `max_concurrency` at a time in threads."""
        wanted = _calls.unique_ids(ids)
        calls = self._status_calls(wanted, channel, method)
        if len(calls) <= 1 or self.max_concurrency == 1:
            answers = [self._statuses_of(call) for call in calls]
        else:
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(calls))) as pool:
                answers = list(pool.map(self._statuses_of, calls))
        return _calls.merged(wanted, answers)

    def _statuses_of(self, call: _calls.Call) -> list[MessageStatus]:
        return self._read(self._execute(call), _calls.statuses)

    def events(self, message_id: str, channel: str) -> Timeline:
        """The message's timeline: every report recorded for it, oldest first."""
        return self._read(self._execute(_calls.events_call(message_id, channel)), _calls.timeline)

    def callbacks(self, message_id: str, channel: str) -> list[CallbackDelivery]:
        """The message's callback events with every attempt to deliver each."""
        return self._read(
            self._execute(_calls.callbacks_call(message_id, channel)), _calls.callback_deliveries
        )

    def history(
        self,
        *,
        start_date: datetime | date | str | None = None,
        end_date: datetime | date | str | None = None,
        channel: str | None = None,
        delivery_status: str | Iterable[str] | None = None,
        to: str | None = None,
        page_size: int = 100,
    ) -> Iterator[MessageStatus]:
        """Every message matching the filters, newest first, fetched a page at a time as the
        iteration reaches it (stop early and no further page is asked for)."""
        for page in self.history_pages(
            start_date=start_date,
            end_date=end_date,
            channel=channel,
            delivery_status=delivery_status,
            to=to,
            page_size=page_size,
        ):
            yield from page.items

    def history_pages(
        self,
        *,
        start_date: datetime | date | str | None = None,
        end_date: datetime | date | str | None = None,
        channel: str | None = None,
        delivery_status: str | Iterable[str] | None = None,
        to: str | None = None,
        page_size: int = 100,
        cursor: str | None = None,
    ) -> Iterator[HistoryPage]:
        """The history's pages, following `nextCursor` with the same filters (a cursor is bound
        to them); `cursor` resumes from a page's `next_cursor` saved earlier."""
        return self._pages(
            lambda at: _calls.history_call(
                start_date=start_date,
                end_date=end_date,
                channel=channel,
                delivery_status=delivery_status,
                to=to,
                page_size=page_size,
                cursor=at,
            ),
            _calls.history_page,
            cursor,
        )

    def _pages(
        self, call_of: _calls.PageCall, parse: Callable[[httpx.Response], _calls.PageT], cursor: str | None
    ) -> Iterator[_calls.PageT]:
        """A listing's pages, each asked for when the iteration reaches it, following
        `nextCursor` (with the same filters: a cursor is bound to them)."""
        while True:
            page = self._read(self._execute(call_of(cursor)), parse)
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # -- inbound, opt-outs, stats -----------------------------------------------------------

    def inbound(
        self,
        *,
        start_date: datetime | date | str | None = None,
        end_date: datetime | date | str | None = None,
        channel: str | None = None,
        sender: str | None = None,
        to: str | None = None,
        page_size: int = 100,
    ) -> Iterator[InboundMessage]:
        """What users sent to your numbers, newest first (bounds on `received_at`; `sender` is the
        API's `from`), fetched a page at a time as the iteration reaches it."""
        for page in self.inbound_pages(
            start_date=start_date,
            end_date=end_date,
            channel=channel,
            sender=sender,
            to=to,
            page_size=page_size,
        ):
            yield from page.items

    def inbound_pages(
        self,
        *,
        start_date: datetime | date | str | None = None,
        end_date: datetime | date | str | None = None,
        channel: str | None = None,
        sender: str | None = None,
        to: str | None = None,
        page_size: int = 100,
        cursor: str | None = None,
    ) -> Iterator[InboundPage]:
        """The inbound list's pages; `cursor` resumes from a saved `next_cursor` (same filters)."""
        return self._pages(
            lambda at: _calls.inbound_call(
                start_date=start_date,
                end_date=end_date,
                channel=channel,
                sender=sender,
                to=to,
                page_size=page_size,
                cursor=at,
            ),
            _calls.inbound_page,
            cursor,
        )

    def opt_outs(self, *, channel: str | None = None, page_size: int = 100) -> Iterator[OptOut]:
        """Your opt-out list, by channel then number, a page at a time as the iteration reaches it."""
        for page in self.opt_out_pages(channel=channel, page_size=page_size):
            yield from page.items

    def opt_out_pages(
        self, *, channel: str | None = None, page_size: int = 100, cursor: str | None = None
    ) -> Iterator[OptOutPage]:
        """The opt-out list's pages; `cursor` resumes from a saved `next_cursor` (same channel)."""
        return self._pages(
            lambda at: _calls.opt_outs_call(channel=channel, page_size=page_size, cursor=at),
            _calls.opt_out_page,
            cursor,
        )

    def get_opt_out(self, channel: str, number: str) -> OptOut | None:
        """The number's entry on your opt-out list for `channel`, None when it is not on it."""
        try:
            response = self._execute(_calls.opt_out_call("GET", channel, number))
        except NotFoundError:
            return None
        return self._read(response, _calls.opt_out)

    def add_opt_out(self, channel: str, number: str) -> OptOut:
        """Put the number (E.164) on your opt-out list for `channel` (there already: unchanged);
        sends to it then end ERROR `gw:opted-out` without being sent."""
        return self._read(self._execute(_calls.opt_out_call("PUT", channel, number)), _calls.opt_out)

    def remove_opt_out(self, channel: str, number: str) -> bool:
        """Take the number off your opt-out list for `channel`: True when this call removed it,
        False when it was not on it (or a retry found it already removed by the attempt whose
        answer was lost: either way it is off the list now)."""
        try:
            self._execute(_calls.opt_out_call("DELETE", channel, number))
        except NotFoundError:
            return False
        return True

    def stats(
        self,
        start_date: datetime | date | str,
        end_date: datetime | date | str,
        *,
        channel: str | None = None,
        bucket: StatsBucketSize | None = None,
    ) -> Stats:
        """Your messages per hour or day of acceptance (UTC) and channel: counts by status,
        delivery rate, top error codes, latency. The bounds fall on whole buckets; a window spans
        at most 7 days by hour, 31 by day (`bucket` defaults to day)."""
        call = _calls.stats_call(start_date=start_date, end_date=end_date, channel=channel, bucket=bucket)
        return self._read(self._execute(call), _calls.stats)

    # -- callbacks --------------------------------------------------------------------------

    def get_callback_settings(self) -> CallbackSettings:
        return self._read(self._execute(_calls.get_callback_settings_call()), _calls.callback_settings)

    def set_callback_settings(self, url: str | None, *, rotate_secret: bool = False) -> CallbackSettings:
        """Set (or with None clear) the company's default callback URL. The answer's `secret` is
        set when this call made one (the first URL, or `rotate_secret`): store it, it is never
        shown again. Tried again only when the gateway cannot have acted (docs/sdk.md)."""
        call = _calls.put_callback_settings_call(url, rotate_secret)
        return self._read(self._execute(call), _calls.callback_settings)

    def replay_callbacks(
        self, since: datetime | date | str, until: datetime | date | str | None = None
    ) -> int:
        """Queue every callback event of the window again; how many were."""
        return self._read(self._execute(_calls.replay_call(since, until)), _calls.replayed)

    # -- the one place requests are made ----------------------------------------------------

    def _execute(self, call: _calls.Call) -> httpx.Response:
        retry = 0
        while True:
            request = self._request_of(self._http, call)
            try:
                response = self._http.send(request)
            except httpx.TransportError as error:
                delay = self.retry.after_error(retry, error, call.repeatable)
                if delay is None:
                    raise transport_error(error) from error
                self._log_retry(call, retry, self.retry.max_retries, delay, type(error).__name__)
            else:
                if response.is_success:
                    return response
                delay = self.retry.after_response(retry, response, call.repeatable)
                if delay is None:
                    raise error_from_response(response)
                self._log_retry(
                    call, retry, self.retry.max_retries, delay, f"answered {response.status_code}"
                )
            time.sleep(delay)
            retry += 1
