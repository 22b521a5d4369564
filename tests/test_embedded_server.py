"""uvicorn inside the test's event loop: it serves, stops, and leaves the host's signals and logging."""

from __future__ import annotations

import logging
import signal
import socket

import httpx
import pytest
from litestar import Litestar, get

from partner_gateway.embedded_server import EmbeddedServer

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@get("/ping", sync_to_thread=False)
def ping() -> str:
    return "pong"


def app() -> Litestar:
    return Litestar([ping], openapi_config=None, logging_config=None)


def logging_state() -> list[tuple[str, int, int, bool, bool]]:
    return [
        (name, (log := logging.getLogger(name)).level, len(log.handlers), log.propagate, log.disabled)
        for name in UVICORN_LOGGERS
    ]


async def test_it_serves_then_stops_and_leaves_signals_and_logging_alone() -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    before = logging_state()
    server = EmbeddedServer(app(), name="test server")
    port = await server.start()
    try:
        assert server.bound_port == port > 0
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/ping")
        assert (response.status_code, response.text) == (200, "pong")
        assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
        assert logging_state() == before
        with pytest.raises(RuntimeError, match="already running"):
            await server.start()
    finally:
        await server.stop()
    assert server.bound_port is None
    await server.stop()  # twice is harmless
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", port))


async def test_a_port_in_use_is_an_os_error_and_it_can_start_again_after() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = EmbeddedServer(app(), port=port)
        with pytest.raises(OSError, match="in use"):
            await server.start()
    async with server as bound:  # nothing was left half-started
        assert bound == port
