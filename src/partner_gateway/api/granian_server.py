"""The partner API on granian (``PARTNER_GATEWAY_HTTP_SERVER=granian``): its embedded asyncio
server, in the process's loop, on the listener the process bound.

granian parses HTTP in Rust (hyper), so what api/server.py does inside uvicorn's protocol has
to be done around granian instead, and part of it cannot be (docs/performance.md, "granian"):

* request targets up to :data:`GRANIAN_MAX_TARGET` (65,534) bytes are served however they arrive;
  a configured limit below that is enforced here, in the ASGI app, with the same 414 problem
  details as on uvicorn. Beyond 65,534 bytes (the ``http`` crate's URI limit) and for malformed
  HTTP, hyper answers itself with a bare ``414`` / ``400`` and no body: granian has no setting or
  hook for those answers.
* while the process drains (:attr:`GranianServer.closing`), every answer carries
  ``Connection: close`` (hyper closes the connection after it).
* stopping: granian stops accepting, lets the requests in flight finish, then runs the
  application's lifespan shutdown.
* keep-alive: hyper keeps an idle connection until ``header_read_timeout``, which is set to the
  process's keep-alive (longer than the clients').
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from granian._granian import SocketHolder
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server

from partner_gateway.api.server import (
    _STATUS_QUERY_ALTERNATIVE,
    _TITLES,
    PROBLEM_CONTENT_TYPE,
    URI_TOO_LONG_PROBLEM_TYPE,
)
from partner_gateway.observability.metrics import problem_answered

__all__ = ["GRANIAN_MAX_TARGET", "GranianServer", "PartnerGranianApp"]

GRANIAN_MAX_TARGET: Final = 65_534
"""Longest request target granian serves: the ``http`` crate refuses a URI of 65,535 bytes and
more (``MAX_LEN = u16::MAX - 1``), and hyper answers that with a bare 414 of its own."""

BACKLOG: Final = 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger(__name__)
_CLOSE: Final = (b"connection", b"close")


def _uri_too_long(limit: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    detail = (
        f"The request target is longer than {limit} bytes; split the batch into several "
        f"requests or use {_STATUS_QUERY_ALTERNATIVE}."
    )
    body = json.dumps(
        {"type": URI_TOO_LONG_PROBLEM_TYPE, "title": _TITLES[414], "status": 414, "detail": detail},
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        _CLOSE,
    ]
    return headers, body


class PartnerGranianApp:
    """The ASGI app as granian calls it: the request-target limit, and ``Connection: close`` on
    every answer once the process drains."""

    def __init__(self, app: App, max_request_target: int) -> None:
        self.app = app
        self.max_request_target = max_request_target
        self.closing = False
        self._too_long = _uri_too_long(max_request_target)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope["query_string"]
        length = len(scope["raw_path"]) + (len(query) + 1 if query else 0)
        if length > self.max_request_target:
            problem_answered(URI_TOO_LONG_PROBLEM_TYPE)
            headers, body = self._too_long
            await send({"type": "http.response.start", "status": 414, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if not self.closing:
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), _CLOSE]
            await send(message)

        await self.app(scope, receive, send_closing)


class _EmbeddedGranian(Server):
    """granian's embedded server on a socket bound by its caller (granian would bind its own)."""

    def __init__(self, listener_fd: int, *args: Any, **kwargs: Any) -> None:
        self._listener_fd = listener_fd
        super().__init__(*args, **kwargs)

    def _init_shared_socket(self) -> None:
        self._ssp = None
        # The stub says SocketHolder(fd); 2.8's constructor is (fd, uds, backlog).
        holder: Any = SocketHolder
        self._shd = holder(self._listener_fd, False, BACKLOG)


# granian would replace the process's logging with its own (logging.config.dictConfig, which
# also closes every existing handler): an incremental configuration that sets levels only.
# Its lines go to the process's handlers (observability/logs.py).
_LEAVE_LOGGING_ALONE: Final = {
    "incremental": True,
    "formatters": {},
    "handlers": {},
    "loggers": {"_granian": {"propagate": True}, "granian.access": {"propagate": True}},
}


def _granian_level(level: str) -> LogLevels:
    """granian's name for the process's level; a level it has no name for (a number): warning."""
    try:
        return LogLevels(level.lower())
    except ValueError:
        return LogLevels.warning


class GranianServer:
    """``app`` served by granian on ``listener`` (a listening socket, handed over: granian closes
    it) until :meth:`stop`; the caller keeps the signals."""

    def __init__(
        self,
        app: App,
        listener: socket.socket,
        *,
        max_request_target: int = GRANIAN_MAX_TARGET,
        keep_alive_seconds: float = 75,
        log_level: str = "warning",
        lifespan: bool = True,
    ) -> None:
        if not 1 <= max_request_target <= GRANIAN_MAX_TARGET:
            raise ValueError(
                f"max_request_target must be between 1 and {GRANIAN_MAX_TARGET} bytes on granian, "
                f"got {max_request_target}"
            )
        self.app = PartnerGranianApp(app, max_request_target)
        address, port = listener.getsockname()[:2]
        # granian owns the socket from here: it closes it when it stops accepting.
        # granian's embedded server is not typed (its own words: experimental): used as Any.
        self._server: Any = _EmbeddedGranian(
            listener.detach(),
            self.app,
            address=address,
            port=port,
            interface=Interfaces.ASGI if lifespan else Interfaces.ASGINL,
            http=HTTPModes.http1,
            websockets=False,
            backlog=BACKLOG,
            http1_settings=HTTP1Settings(header_read_timeout=max(1, round(keep_alive_seconds * 1000))),
            log_level=_granian_level(log_level),
            log_dictconfig=copy.deepcopy(_LEAVE_LOGGING_ALONE),
            log_access=False,
        )
        self._killed = False

    @property
    def started(self) -> bool:
        """True once the worker serves (granian binds nothing itself: the socket is listening)."""
        return any(worker.is_alive() for worker in self._server.wrks)

    @property
    def closing(self) -> bool:
        return self.app.closing

    @closing.setter
    def closing(self, value: bool) -> None:
        self.app.closing = value

    async def serve(self) -> None:
        """Serve until :meth:`stop`; returns once the requests in flight are answered and the
        lifespan's shutdown ran."""
        try:
            await self._server.serve()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self._killed or (current is not None and current.cancelling()):
                raise
            # kill() cancelled the worker's task, and granian's stop re-raises that: done.

    def stop(self) -> None:
        """Stop accepting, answer what is in flight, then return from :meth:`serve`."""
        self._server.stop()

    def kill(self) -> None:
        """Hurried: stop the worker now, requests in flight included."""
        self._killed = True
        for worker in self._server.wrks:
            worker.kill()
        self._server.stop()
