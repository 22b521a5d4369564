"""The ASGI entry point: the partner API's hottest routes on ASGI itself, everything else in Litestar.

Partners poll one message's status, and send, far more than they call anything else. Measured on
this project's machine (docs/performance.md), Litestar's routing, parameter and body extraction,
dependency injection and response pipeline cost a route about 35 µs more than ASGI itself: a
third of a whole authenticated look-up once the store read runs below SQLAlchemy, and 40 % of a
send's time on the event loop. So two kinds of request are answered here, with the very parts the
framework's handlers are made of (the key check, `status_of_one`, `accept`, the wire shapes, the
problem documents):

* `GET /partner-gateway/v1/messages/status/{customerMessageId}?channel=...` and
  `GET /partner-gateway/v1/messages/status?ids=...&channel=...` whose query is plain: only their
  declared parameters, each once, nothing percent-encoded (what clients send). Any other query
  goes to Litestar, whose parsing (and refusal of unknown or repeated parameters) stays the contract;
* `POST /partner-gateway/v1/{path}/messages` of each channel in the registry, with no query, whose
  body passes api/strict_input.py's checks (declared JSON, bounded shape, no repeated key) and
  decodes (strictly) into that channel's request type. Any other body is handed to Litestar as
  it arrived: the framework's answer to bad input stays the contract.

Every other request, those paths' unusual forms included (a trailing slash, another method), goes
to Litestar unchanged. Litestar still declares every operation, so the OpenAPI document describes
these routes and the schemathesis run checks their answers against it; tests/api/test_front.py
checks that the front and the framework answer the same requests alike.

Each request it answers is counted against its company's rate limit as Litestar's would be
(api/rate_limits).

Every request, the front's and the framework's, gets its request id here (observability/
context.py: the client's `X-Request-Id`, or a new one), echoed in the answer's header; it is
counted by route template and status (`PARTNER_GATEWAY_METRICS_ENABLED`) and, under the partner
API's path, written to the access log (`PARTNER_GATEWAY_ACCESS_LOG`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

import msgspec

from partner_gateway.api.auth import company_for_authorization
from partner_gateway.api.problems import ProblemError, problem_headers, to_problem
from partner_gateway.api.rate_limits.limiter import NO_HEADERS, Headers
from partner_gateway.api.sending import accept
from partner_gateway.api.status import status_of_one, statuses_of_many
from partner_gateway.api.strict_input import check_json_body
from partner_gateway.channels.entry import ChannelEntry
from partner_gateway.channels.registry import CHANNELS, ChannelRegistry
from partner_gateway.domain.json_bounds import JsonBounds
from partner_gateway.domain.rate_limits import Traffic
from partner_gateway.observability import context
from partner_gateway.observability.http import UNMATCHED_ROUTE
from partner_gateway.observability.logs import log_access
from partner_gateway.observability.metrics import HTTP
from partner_gateway.runtime import Runtime

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
ASGIApp = Callable[..., Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]
_encode = msgspec.json.Encoder().encode
_BATCH_PARAMETERS = (b"ids", b"channel")
_STATUS_PARAMETERS = (b"channel",)
DEFAULT_BOUNDS = JsonBounds(max_depth=32, max_items=10_000)

_StatusRead = Callable[[Runtime, str, str | None, str], Awaitable[Any]]
"""status_of_one or statuses_of_many: (runtime, company, channel, the id or the ids) -> answer."""


class _Send:
    """A channel's send operation: its body's decoder, and the channel's entry."""

    def __init__(self, entry: ChannelEntry[Any]) -> None:
        self.decode: Callable[[bytes], Any] = msgspec.json.Decoder(entry.request_type).decode
        self.entry = entry


class _Answer:
    """`send`, with the request id added to the answer's headers and its status kept."""

    __slots__ = ("_request_id", "_send", "status")

    def __init__(self, send: Send, request_id: str) -> None:
        self._send = send
        self._request_id = request_id.encode()
        self.status = 500  # what a request that ends without an answer is counted as

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), (b"x-request-id", self._request_id)]
        await self._send(message)


class PartnerApi:
    """Serves the single-status look-up itself and hands every other request to `framework`."""

    def __init__(
        self,
        framework: ASGIApp,
        runtime: Callable[[], Runtime],
        base_path: str,
        max_body_bytes: int,
        channels: ChannelRegistry = CHANNELS,
        bounds: JsonBounds = DEFAULT_BOUNDS,
        *,
        metrics: bool = True,
        access_log: bool = True,
    ) -> None:
        self.framework = framework
        self._runtime = runtime
        self._base_path = base_path
        self._status_prefix = f"{base_path}/messages/status/"
        self._statuses_path = f"{base_path}/messages/status"
        self._status_route = f"{base_path}/messages/status/{{customerMessageId}}"
        self._sends = {f"{base_path}/{entry.path}/messages": _Send(entry) for entry in channels}
        self._max_body_bytes = max_body_bytes
        self._bounds = bounds
        self._metrics = metrics
        self._access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.framework(scope, receive, send)
            return
        started = perf_counter()
        request_id = context.request_id_from(_header(scope, b"x-request-id"))
        token = context.enter(context.RequestContext(request_id))
        answer = _Answer(send, request_id)
        route = UNMATCHED_ROUTE
        try:
            route = await self._route(scope, receive, answer)
        finally:
            seconds = perf_counter() - started
            if self._metrics:
                HTTP.observe(scope["method"], route, answer.status, seconds)
            if self._access_log and scope["path"].startswith(self._base_path):
                log_access(scope["method"], route, answer.status, seconds)
            context.leave(token)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> str:
        """Answer the request; the route template it matched."""
        method = scope["method"]
        path: str = scope["path"]
        if method == "GET" and path.startswith(self._status_prefix):
            message_id = path[len(self._status_prefix) :]
            parameters = _plain_query(scope["query_string"], _STATUS_PARAMETERS)
            if message_id and "/" not in message_id and parameters is not None:
                channel = parameters.get(b"channel")
                await self._look_up(scope, send, status_of_one, channel, message_id)
                return self._status_route
        elif method == "GET" and path == self._statuses_path:
            parameters = _plain_query(scope["query_string"], _BATCH_PARAMETERS)
            if parameters is not None and b"ids" in parameters:
                channel = parameters.get(b"channel")
                await self._look_up(scope, send, statuses_of_many, channel, parameters[b"ids"])
                return path
        elif method == "POST" and path in self._sends:
            await self._send(self._sends[path], scope, receive, send)
            return path
        await self.framework(scope, receive, send)
        return str(scope.get("path_template") or UNMATCHED_ROUTE)  # set by Litestar's router

    async def _send(self, operation: _Send, scope: Scope, receive: Receive, send: Send) -> None:
        body, complete = await _read_body(receive, self._max_body_bytes)
        data = None
        if complete and len(body) <= self._max_body_bytes and not scope["query_string"]:
            try:
                # strict_input's checks first, as the framework's request makes them
                check_json_body(body, _header(scope, b"content-type"), self._bounds)
                data = operation.decode(body)
            except (ProblemError, msgspec.DecodeError):  # the framework words those
                data = None
        if data is None:
            await self.framework(scope, _replay(body, complete, receive), send)
            return
        limits = NO_HEADERS  # the RateLimit headers, once the request is counted (api/rate_limits)
        try:
            runtime = self._runtime()
            company_id = await company_for_authorization(_header(scope, b"authorization"), runtime)
            limits = runtime.rate_limits.admit(company_id, Traffic.SENDS)
            accepted = await accept(
                runtime, company_id, operation.entry, data, _header(scope, b"idempotency-key")
            )
        except Exception as exc:  # every error is answered as a problem, as Litestar does
            await _problem(send, exc, limits)
            return
        headers = [
            *_JSON_HEADERS,
            *((name.lower().encode(), value.encode()) for name, value in accepted.headers().items()),
            *limits,
        ]
        await _answer(send, 202, headers, _encode(accepted.answer))

    async def _look_up(
        self, scope: Scope, send: Send, read: _StatusRead, channel: str | None, wanted: str
    ) -> None:
        """`read` (status_of_one or statuses_of_many) for the key's company, answered as JSON."""
        limits = NO_HEADERS
        try:
            runtime = self._runtime()
            company_id = await company_for_authorization(_header(scope, b"authorization"), runtime)
            limits = runtime.rate_limits.admit(company_id, Traffic.READS)
            found = await read(runtime, company_id, channel, wanted)
        except Exception as exc:  # every error is answered as a problem, as Litestar does
            await _problem(send, exc, limits)
            return
        await _answer(send, 200, [*_JSON_HEADERS, *limits] if limits else _JSON_HEADERS, _encode(found))


async def _problem(send: Send, exc: Exception, limits: Headers) -> None:
    problem = to_problem(exc)
    headers = [(name.lower().encode(), value.encode()) for name, value in problem_headers(problem).items()]
    await _answer(send, problem.status, [*headers, *limits], _encode(problem.problem()))


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, and whether it is all there: reading stops past `limit` bytes (or at a
    disconnect) and leaves the rest to whoever answers next."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """`receive` as if nothing had been read: what was read comes first, then the rest."""
    pending = [{"type": "http.request", "body": body, "more_body": not complete}]

    async def replayed() -> Any:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header (ASGI servers give names in lower case), as Litestar reads it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _plain_query(query: bytes, names: tuple[bytes, ...]) -> dict[bytes, str] | None:
    """The query's parameters when it holds only `names`, each at most once, in ASCII with no
    escapes (`%`, or `+` for a space): nothing to decode, so nothing to decode differently from
    the framework. None for any other query."""
    if not query:
        return {}
    if b"%" in query or b"+" in query or not query.isascii():
        return None
    parameters: dict[bytes, str] = {}
    for pair in query.split(b"&"):
        name, equals, value = pair.partition(b"=")
        if not equals or name not in names or name in parameters:
            return None
        parameters[name] = value.decode("latin-1")
    return parameters
