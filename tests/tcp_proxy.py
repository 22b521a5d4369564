"""A TCP forwarder a test controls, between the gateway and a real service (PostgreSQL, RabbitMQ).

A fake only at the process edge: the service behind it is the real one, and the proxy only
decides whether bytes get through. `refuse()` cuts every open connection with a reset (as when the
server's host dies) and refuses new ones (nothing listens: ECONNREFUSED, as while a server is
down); `restore()` listens on the same port again.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.accepted = 0  # connections taken in while listening
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen (on a free port the first time, the same port afterwards); returns the port."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    restore = start

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    async def refuse(self) -> None:
        """Stop listening and reset every connection that is open."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for client, upstream in list(self._pairs):
            client.transport.abort()
            upstream.transport.abort()

    async def stop(self) -> None:
        await self.refuse()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.accepted += 1
        try:
            try:
                upstream_reader, upstream = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()
                return
            pair = (writer, upstream)
            self._pairs.add(pair)
            try:
                await asyncio.gather(_pipe(reader, upstream), _pipe(upstream_reader, writer))
            finally:
                self._pairs.discard(pair)
                writer.transport.abort()
                upstream.transport.abort()
        finally:
            self._handlers.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until either side ends; then both sides are closed (the caller aborts them)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65_536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()  # the other direction's read ends too
