"""The drain's parts: its settings, its bounded steps, and the HTTP server answering what arrived."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from partner_gateway.api.granian_server import GranianServer
from partner_gateway.api.server import PartnerServer, PartnerServerConfig, build_config
from partner_gateway.readiness import Readiness
from partner_gateway.shutdown import Shutdown
from partner_gateway.startup import StartupError, load_settings


def test_the_drain_timeout_must_be_longer_than_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNER_GATEWAY_DRAIN_GRACE_SECONDS", "10")
    monkeypatch.setenv("PARTNER_GATEWAY_DRAIN_TIMEOUT_SECONDS", "5")
    with pytest.raises(StartupError) as refused:
        load_settings()
    assert refused.value.message == (
        "PARTNER_GATEWAY_DRAIN_TIMEOUT_SECONDS: must be longer than PARTNER_GATEWAY_DRAIN_GRACE_SECONDS (10) (got '5')"
    )
    assert refused.value.exit_code == 2
    monkeypatch.setenv("PARTNER_GATEWAY_DRAIN_GRACE_SECONDS", "-1")
    with pytest.raises(StartupError, match=r"^PARTNER_GATEWAY_DRAIN_GRACE_SECONDS: "):
        load_settings()


async def test_a_failing_step_is_one_line_and_a_hanging_one_is_cut_once_hurried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shutdown = Shutdown(grace_seconds=0, timeout_seconds=30)
    shutdown.begin("SIGTERM")

    async def fails() -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    async def hangs() -> None:
        await asyncio.sleep(3600)

    await shutdown.step("the last writes", fails())
    asyncio.get_running_loop().call_later(0.1, shutdown.hurry, "a second signal (SIGINT)")
    started = time.monotonic()
    await shutdown.step("the store", hangs())
    assert time.monotonic() - started < 2  # hurried: at most FAST_STEP_SECONDS more
    messages = [record.getMessage() for record in caplog.records if record.name == "partner_gateway.shutdown"]
    assert (
        "stopping: the last writes failed: ConnectionRefusedError: [Errno 111] Connection refused" in messages
    )
    assert "stopping: the store cut short" in messages
    assert not [record for record in caplog.records if record.exc_info]


async def test_sigint_has_no_grace_and_readiness_says_why() -> None:
    shutdown = Shutdown(grace_seconds=5, timeout_seconds=30)
    shutdown.begin("SIGINT")
    assert shutdown.grace == 0
    terminated = Shutdown(grace_seconds=5, timeout_seconds=30)
    terminated.begin("SIGTERM")
    assert terminated.grace == 5
    assert 0 < terminated.for_handovers() <= 25
    readiness = Readiness()
    readiness.stopping("the process is shutting down (SIGTERM)")
    assert await readiness.problems() == {"shutdown": "the process is shutting down (SIGTERM)"}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@dataclass
class Served:
    """A server under test, whichever it is: its port, how it stops, how it starts closing."""

    port: int
    serving: asyncio.Task[None]
    stop: Callable[[], None]
    start_closing: Callable[[], None]


@pytest.fixture(params=["uvicorn", "granian"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    served: Served
    if request.param == "granian":
        granian = GranianServer(app, listener, lifespan=False, log_level="warning")
        serving = asyncio.create_task(granian.serve())

        def closing() -> None:
            granian.closing = True

        served = Served(port, serving, granian.stop, closing)
        started: Callable[[], bool] = lambda: granian.started  # noqa: E731
    else:
        uvicorn_server = PartnerServer(
            build_config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
        )
        serving = asyncio.create_task(uvicorn_server.serve(sockets=[listener]))

        def stop() -> None:
            uvicorn_server.should_exit = True

        def closing() -> None:
            config = uvicorn_server.config
            assert isinstance(config, PartnerServerConfig)
            config.closing = True

        served = Served(port, serving, stop, closing)
        started = lambda: uvicorn_server.started  # noqa: E731
    while not started():
        await asyncio.sleep(0.01)
    yield served
    served.stop()
    await asyncio.wait_for(serving, 10)


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 5)  # until the server closes


async def test_a_request_arriving_as_the_server_stops_is_answered_then_closed(server: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /one HTTP/1.1\r\nHost: gateway\r\n")  # half of the head
    await writer.drain()
    await asyncio.sleep(0.05)
    server.stop()
    await asyncio.sleep(0.3)  # uvicorn's tick, its shutdown, past the idle linger
    writer.write(b"\r\n")
    await writer.drain()
    answer = await read_answer(reader)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
    assert b"connection: close" in answer.lower()
    writer.close()
    await asyncio.wait_for(server.serving, 5)


async def test_an_idle_connection_answers_a_request_already_on_its_way(
    server: Served, request: pytest.FixtureRequest
) -> None:
    if "granian" in request.node.name:  # docs/performance.md, "granian": what fails on it
        request.applymarker(
            pytest.mark.xfail(strict=True, reason="granian closes idle connections at once when it stops")
        )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /one HTTP/1.1\r\nHost: gateway\r\n\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b"ok"), 5)
    assert b"connection: close" not in first.lower()  # kept alive
    server.stop()
    await asyncio.sleep(0.12)  # the shutdown has begun; the connection lingers
    writer.write(b"GET /two HTTP/1.1\r\nHost: gateway\r\n\r\n")
    await writer.drain()
    try:
        second = await read_answer(reader)
    finally:
        writer.close()
    assert second.startswith(b"HTTP/1.1 200 OK\r\n"), second
    assert b"connection: close" in second.lower()


async def test_while_draining_every_answer_closes_its_connection(server: Served) -> None:
    server.start_closing()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /one HTTP/1.1\r\nHost: gateway\r\n\r\n")
    await writer.drain()
    answer = await read_answer(reader)
    assert b"connection: close" in answer.lower()
    writer.close()


async def test_granian_waits_for_a_request_in_flight_and_a_kill_cuts_it() -> None:
    """Stopped, granian waits for the request still running (the drain's "every request answered");
    hurried, kill() ends the serving at once (the drain's second signal or deadline)."""
    started = asyncio.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        await asyncio.Event().wait()  # never answers by itself

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    granian = GranianServer(slow, listener, lifespan=False, log_level="warning")
    serving = asyncio.create_task(granian.serve())
    while not granian.started:
        await asyncio.sleep(0.01)
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: gateway\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(started.wait(), 5)
    granian.stop()
    done, _ = await asyncio.wait({serving}, timeout=0.5)
    assert not done  # the request in flight holds the stop
    granian.kill()
    await asyncio.wait_for(serving, 5)
    writer.close()
