"""HTTP/1.1 protocol layer of the partner API server (uvicorn + httptools).

The partner contract lets ``GET /partner-gateway/v1/messages/status?ids=...`` carry request
targets (path + query) of at least 64 KiB.  Stock uvicorn cannot honour that reliably:

* its h11 protocol refuses request lines over 16 KiB with a bare text 400 -- but only when the
  line arrives in more than one read, so single-write loopback tests pass by luck;
* its httptools protocol accumulates the target without bound and then hands it to
  ``httptools.parse_url``, which refuses anything over 65,535 bytes
  (``HttpParserInvalidURLError: url is too long``); uvicorn turns that into the same bare
  ``400 Invalid HTTP request received.`` and closes at once, so a client still writing usually
  gets a TCP reset instead of even that answer.

:class:`PartnerHttpProtocol` subclasses uvicorn's httptools protocol and

* counts the request target as httptools streams it to ``on_url`` (once per read, so the count
  does not depend on how the bytes were split into TCP segments) and stops the parser the moment
  it would exceed the limit -- the target is never buffered beyond the limit;
* answers ``414 URI Too Long`` (or ``400 Bad Request`` for any other malformed HTTP) with an
  RFC 9457 ``application/problem+json`` body and ``Connection: close``, *after* the responses of
  any earlier keep-alive/pipelined requests on the connection, never interleaved with them;
* then drains: it half-closes its side (FIN after the answer), keeps reading and discarding what
  the client is still sending for at most :data:`DRAIN_TIMEOUT` seconds or
  :data:`DRAIN_MAX_BYTES` bytes, whichever comes first, and closes.  That way the client reads the
  answer instead of a connection reset.

When the process drains (SIGTERM, shutdown.py) it also

* answers every request with ``Connection: close`` once the config's ``closing`` is set, so clients
  leave their kept-alive connections for another process while this one still serves;
* on shutdown, answers a request whose head has begun to arrive instead of closing under it, and
  keeps an idle connection open for :data:`IDLE_LINGER_SECONDS` (a request already on its way is
  answered, then the connection closes) rather than closing it at once;
* (:class:`PartnerServer`) takes in the connections the kernel completed but nobody accepted yet
  before it closes the listening socket, which would reset them.

Use :func:`build_config` to get a ``uvicorn.Config`` wired with it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
from typing import Any, ClassVar, Final, cast

import httptools
import uvicorn
from uvicorn._types import ASGI3Application, ASGIApplication
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from partner_gateway.embedded_server import InLoopServer
from partner_gateway.observability.metrics import problem_answered

__all__ = [
    "BAD_REQUEST_PROBLEM_TYPE",
    "DRAIN_MAX_BYTES",
    "DRAIN_TIMEOUT",
    "HTTPTOOLS_MAX_URL",
    "IDLE_LINGER_SECONDS",
    "MAX_REQUEST_TARGET",
    "PROBLEM_CONTENT_TYPE",
    "URI_TOO_LONG_PROBLEM_TYPE",
    "PartnerHttpProtocol",
    "PartnerServer",
    "PartnerServerConfig",
    "build_config",
]

MAX_REQUEST_TARGET: Final = 65_535
"""Documented default limit, in bytes, of a request target (the raw path + query as sent on the
request line, e.g. ``/partner-gateway/v1/messages/status?ids=...``).  A target of exactly this many
bytes is served; one byte more is answered with 414.  The partner contract promises at least
65,523 bytes."""

HTTPTOOLS_MAX_URL: Final = 65_535
"""Longest URL ``httptools.parse_url`` (0.9) accepts; 65,536 bytes and up raise
``HttpParserInvalidURLError`` (its URL structure stores offsets as 16-bit integers).  uvicorn parses
every target with it, so a configured limit cannot be higher than this."""

DRAIN_TIMEOUT: Final = 2.0
"""Seconds a connection keeps reading (and discarding) input after its 414/400 answer was written,
so a client still sending its request reads the answer rather than a TCP reset."""

DRAIN_MAX_BYTES: Final = 1024 * 1024
"""Bytes a rejected connection discards before the answer is written (more than that pauses
reading) and again after it (more than that closes the connection, even before
:data:`DRAIN_TIMEOUT`)."""

IDLE_LINGER_SECONDS: Final = 0.25
"""On shutdown, how long an idle connection stays open for a request already on its way (one the
client wrote before it could see the connection close); such a request is answered."""

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
URI_TOO_LONG_PROBLEM_TYPE: Final = "https://partner-gateway.dev/problems/uri-too-long"
BAD_REQUEST_PROBLEM_TYPE: Final = "https://partner-gateway.dev/problems/malformed-request"
_STATUS_QUERY_ALTERNATIVE: Final = "POST /partner-gateway/v1/messages/status/query"
# RFC 9110 reason phrases (Python 3.11's http.HTTPStatus still says "Request-URI Too Long").
_TITLES: Final = {400: "Bad Request", 414: "URI Too Long"}


def _validate_limit(max_request_target: int) -> int:
    if isinstance(max_request_target, bool) or not isinstance(max_request_target, int):
        raise TypeError(f"max_request_target must be an int, not {type(max_request_target).__name__}")
    if not 1 <= max_request_target <= HTTPTOOLS_MAX_URL:
        raise ValueError(
            f"max_request_target must be between 1 and {HTTPTOOLS_MAX_URL} bytes "
            f"(httptools.parse_url refuses longer URLs), got {max_request_target}"
        )
    return max_request_target


class _RequestTargetTooLong(Exception):
    """Raised from ``on_url`` to make httptools stop parsing; never escapes the protocol."""


class PartnerServerConfig(Config):
    """A ``uvicorn.Config`` that also carries the request-target limit of :class:`PartnerHttpProtocol`.

    Carrying the limit on the config (a plain attribute) rather than on a generated protocol
    subclass keeps the config picklable, which uvicorn needs for ``workers > 1``.
    """

    def __init__(self, *args: Any, max_request_target: int = MAX_REQUEST_TARGET, **kwargs: Any) -> None:
        self.max_request_target = _validate_limit(max_request_target)
        self.closing = False
        """Set when the process drains: every answer from then on closes its connection."""
        super().__init__(*args, **kwargs)


class _HeadWithBody:
    """A response's transport that sends its head together with the first body write.

    uvicorn writes a response's status line and headers as soon as the app starts the response,
    then the body: two send() calls and two TCP segments for every small JSON answer. Measured
    under wrk, the writes were a third of a single-status look-up's time. Holding the head until
    the body's first write (or the end of the event loop's current pass, whichever comes first)
    sends both in one. Only response heads are held: "100 Continue" is written at once, since the
    client waits for it before sending the body the app is waiting for.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data = self._held + data
            self._held = None
        elif data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 100 "):
            self._held = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class PartnerHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request target and problem+json error answers.

    The limit is ``config.max_request_target`` when the config is a :class:`PartnerServerConfig`,
    else the class attribute :attr:`max_request_target`.
    """

    max_request_target: ClassVar[int] = MAX_REQUEST_TARGET

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limit = config.max_request_target if isinstance(config, PartnerServerConfig) else None
        self.request_target_limit = _validate_limit(self.max_request_target if limit is None else limit)
        self._url_buf = bytearray()
        self._target_too_long = False
        # True between on_headers_complete and on_message_complete of the message being parsed.
        self._in_body = False
        # The cycle whose ASGI task was started last (self.cycle is the last *parsed* one).
        self._running: RequestResponseCycle | None = None
        # Once set, the parser is retired: the bytes of the 414/400 answer to write.
        self._rejection: bytes | None = None
        self._answered = False
        self._discard_budget = DRAIN_MAX_BYTES
        self._drain_timer: asyncio.TimerHandle | None = None
        # True between on_message_begin and on_headers_complete: a request's head is arriving.
        self._in_head = False
        self._closing = False  # this connection's own shutdown has begun
        self._linger: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._rejection is not None:
            self._discard(len(data))
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            if self._target_too_long:
                limit = self.request_target_limit
                self.logger.info(
                    "%sRequest target longer than %d bytes; answering 414.", self._log_prefix(), limit
                )
                detail = (
                    f"The request target is longer than {limit} bytes; split the batch into several "
                    f"requests or use {_STATUS_QUERY_ALTERNATIVE}."
                )
                self._reject(414, URI_TOO_LONG_PROBLEM_TYPE, detail)
            else:
                cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else exc
                self.logger.warning("%sInvalid HTTP request received: %r", self._log_prefix(), cause)
                self._reject(400, BAD_REQUEST_PROBLEM_TYPE, "The request is not valid HTTP/1.1.")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_drain_timer()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    # -- httptools parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_buf = bytearray()
        self._in_body = False
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        # httptools reports the target piecewise: once per feed_data call that holds part of it.
        if len(self._url_buf) + len(url) > self.request_target_limit:
            self._target_too_long = True
            raise _RequestTargetTooLong
        self._url_buf += url

    def on_headers_complete(self) -> None:
        self.url = bytes(self._url_buf)
        self._url_buf = bytearray()
        super().on_headers_complete()
        self._in_head = False
        self._in_body = True
        config = self.config
        if self._closing or (isinstance(config, PartnerServerConfig) and config.closing):
            self.cycle.keep_alive = False  # answered with "Connection: close", then closed

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False

    # -- uvicorn hooks ----------------------------------------------------------------------------

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        self._running = cycle
        cycle.transport = cast("asyncio.Transport", _HeadWithBody(self.transport, self.loop))
        super()._start_asgi_task(cycle, app)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._rejection is not None and not self._answered and not self._responses_pending():
            self._send_rejection()

    def send_400_response(self, msg: str) -> None:
        self._reject(400, BAD_REQUEST_PROBLEM_TYPE, msg)

    def shutdown(self) -> None:
        """The server stops: answer what has arrived, then close (uvicorn closes a connection at
        once unless a response is under way, resetting a request whose head is arriving)."""
        if self._rejection is not None and (self._answered or not self._responses_pending()):
            self._stop_draining()
            return
        self._closing = True
        if self._responses_pending():
            for cycle in (self.cycle, self._running, *(queued for queued, _app in self.pipeline)):
                if cycle is not None:
                    cycle.keep_alive = False
        elif not self._in_head and not self.transport.is_closing():
            self._linger = self.loop.call_later(IDLE_LINGER_SECONDS, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._linger = None
        if not self._in_head and not self._responses_pending() and not self.transport.is_closing():
            self.transport.close()

    # -- rejection and drain ----------------------------------------------------------------------

    def _log_prefix(self) -> str:
        return f"{self.client[0]}:{self.client[1]} - " if self.client else ""

    def _responses_pending(self) -> bool:
        running = self._running
        return bool(self.pipeline) or (
            running is not None and not running.response_complete and not running.disconnected
        )

    def _reject(self, status: int, problem_type: str, detail: str) -> None:
        """Retire the parser and answer ``status`` once earlier responses are out."""
        if self._rejection is not None:  # pragma: no cover - the parser is retired by then
            return
        problem_answered(problem_type)  # answered below the application: counted here
        body = json.dumps(
            {"type": problem_type, "title": _TITLES[status], "status": status, "detail": detail},
            separators=(",", ":"),
        ).encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _TITLES[status].encode())]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: ",
            PROBLEM_CONTENT_TYPE.encode(),
            b"\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\nconnection: close\r\n\r\n",
        ]
        self._rejection = b"".join([*head, body])
        self._unset_keepalive_if_required()

        cycle = self.cycle
        if self._in_body and cycle is not None and not cycle.response_complete:
            # The bad bytes are in the body of a request whose head was accepted: drop that request.
            queued = [entry for entry in self.pipeline if entry[0] is cycle]
            if queued:
                self.pipeline.remove(queued[0])
            else:
                started = cycle.response_started
                cycle.disconnected = True  # the app's receive() gets http.disconnect, its send() no-ops
                cycle.waiting_for_100_continue = False
                cycle.message_event.set()
                if started:  # half a response is out already; no answer can follow it
                    self.transport.close()
                    return
        if not self._responses_pending():
            self._send_rejection()
        # else: on_response_complete() sends it after the last earlier response.

    def _send_rejection(self) -> None:
        if self._rejection is None or self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.transport.write(self._rejection)
        self._answered = True
        self._discard_budget = DRAIN_MAX_BYTES
        if self.transport.can_write_eof():
            self.transport.write_eof()  # FIN after the answer: the client sees EOF right away
        self._drain_timer = self.loop.call_later(DRAIN_TIMEOUT, self._stop_draining)
        self.flow.resume_reading()

    def _discard(self, size: int) -> None:
        self._discard_budget -= size
        if self._discard_budget > 0:
            return
        if self._answered:
            self._stop_draining()
        else:
            self.flow.pause_reading()  # let TCP push back until earlier responses are out

    def _stop_draining(self) -> None:
        self._cancel_drain_timer()
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_drain_timer(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None


class PartnerServer(InLoopServer):
    """uvicorn in the process's loop whose shutdown first accepts the connections waiting in the
    listening socket's backlog: closing a listening socket resets them, though their clients
    have connected and may have sent a request. Those are answered like every other (with
    ``Connection: close``); a connection that arrives after this is refused, never reset."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        waiting: list[socket.socket] = []
        for listener in sockets or []:
            listener.setblocking(False)
            while True:
                try:
                    connection, _address = listener.accept()
                except OSError:  # BlockingIOError: the backlog is empty
                    break
                waiting.append(connection)
        # No await since the last accept: nothing more can enter the backlog unseen before it closes.
        for server in getattr(self, "servers", []):
            server.close()
        for listener in sockets or []:
            listener.close()
        loop = asyncio.get_running_loop()
        for connection in waiting:
            connection.setblocking(False)
            try:
                await loop.connect_accepted_socket(self._protocol, connection)
            except OSError:  # the client has gone already
                connection.close()
        await super().shutdown(sockets=[])

    def _protocol(self) -> asyncio.Protocol:
        config = self.config
        protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=self.server_state, app_state=self.lifespan.state
        )
        return protocol


def build_config(
    app: ASGIApplication | str,
    *,
    host: str,
    port: int,
    max_request_target: int = MAX_REQUEST_TARGET,
    **kwargs: Any,
) -> uvicorn.Config:
    """Return a uvicorn config serving ``app`` with :class:`PartnerHttpProtocol`.

    Defaults: uvloop when installed (else asyncio), ``lifespan="on"``, no proxy headers, no access
    log, no ``Server`` header; ``kwargs`` are passed to ``uvicorn.Config`` and override these.
    ``max_request_target`` (1..:data:`HTTPTOOLS_MAX_URL`) is the longest request target served.
    """
    if "http" in kwargs or "http2" in kwargs:
        raise TypeError("build_config() always uses PartnerHttpProtocol; 'http'/'http2' cannot be overridden")
    settings: dict[str, Any] = {
        "loop": "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio",
        "lifespan": "on",
        "proxy_headers": False,
        "access_log": False,
        "server_header": False,
    }
    settings.update(kwargs)
    return PartnerServerConfig(
        app, host=host, port=port, http=PartnerHttpProtocol, max_request_target=max_request_target, **settings
    )
