"""uvicorn inside an event loop its caller runs: the caller keeps the signals (and a guest, the logging).

- :class:`InLoopServer`: ``uvicorn.Server`` without its signal handlers. Whoever runs it stops it by
  setting ``should_exit``; the gateway process does so on SIGINT/SIGTERM, then stops its own parts in
  order (process.py).
- :class:`EmbeddedServer`: an ASGI app served in the background of the current loop as a guest of
  the process (the simulators, and the tests' webhook receivers): its port is bound before serving,
  so a port in use is an ``OSError`` where uvicorn would call ``sys.exit``; the host's logging is left
  as it is; starting and stopping wait a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from types import TracebackType
from typing import Any, Final

import uvicorn

POLL_SECONDS: Final = 0.01  # how often start() looks whether uvicorn is serving yet


class InLoopServer(uvicorn.Server):
    """uvicorn, minus its signal handling: signals belong to the process that runs the loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _GuestConfig(uvicorn.Config):
    def configure_logging(self) -> None:
        """Leave the host process's logging alone (uvicorn would set its loggers' levels, or more)."""


@dataclass(eq=False)
class EmbeddedServer:
    """``app`` on ``host``:``port`` while started (port 0: an ephemeral one; :attr:`bound_port` says
    which). ``async with`` gives the port bound.

    Its requests may show in the host's ``uvicorn.access`` log: uvicorn has no per-server switch.
    """

    app: Callable[..., Any]  # an ASGI application (a Litestar app)
    _: KW_ONLY
    host: str = "127.0.0.1"
    port: int = 0
    name: str = "embedded server"
    start_timeout: float = 5.0
    stop_timeout: float = 5.0
    bound_port: int | None = field(default=None, init=False)
    _server: InLoopServer | None = field(default=None, init=False, repr=False)
    _serving: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def start(self) -> int:
        """Bind, serve in a task, and return the port once uvicorn serves; raises OSError when the
        port cannot be bound and RuntimeError when uvicorn does not start in time."""
        if self._serving is not None:
            raise RuntimeError(f"the {self.name} is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.create_server((self.host, self.port), family=family)
        config = _GuestConfig(self.app, host=self.host, port=self.port, lifespan="off")
        self._server = server = InLoopServer(config)
        self._serving = serving = asyncio.create_task(server.serve([listener]), name=self.name)
        deadline = time.monotonic() + self.start_timeout
        while not server.started:
            if serving.done() or time.monotonic() > deadline:
                await self.stop()
                listener.close()
                raise RuntimeError(f"the {self.name} did not start")
            await asyncio.sleep(POLL_SECONDS)
        self.bound_port = int(listener.getsockname()[1])
        return self.bound_port

    async def stop(self) -> None:
        """Ask uvicorn to finish and wait for it (at most ``stop_timeout``, then it is cancelled).
        Stopping a server that is not running does nothing."""
        server, serving = self._server, self._serving
        self._server, self._serving, self.bound_port = None, None, None
        if server is None or serving is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(serving, self.stop_timeout)
        except TimeoutError:
            pass  # wait_for has cancelled it
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the caller is being cancelled, not only the server

    async def __aenter__(self) -> int:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()
