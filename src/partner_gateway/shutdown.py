"""Shutdown and drain (SPEC §7): from the first stop signal to the exit, in order and in bounded time.

The sequence (docs/operations.md, "Shutdown and drain"), for a process with the partner API:

    SIGTERM    /ready answers 503 ("shutdown") and every answer carries "Connection: close",
               while the process serves on for PARTNER_GATEWAY_DRAIN_GRACE_SECONDS: load
               balancers see it and send their traffic elsewhere. SIGINT (a terminal, no load
               balancer in front) skips this grace.
    then       the listening socket closes, the connections already waiting in its backlog taken
               in first; every request that reached the server is answered, then its connection
               closes (api/server.py)
    then       the dispatcher takes no new work (claims, relay, queue consumers cancelled at the
               broker); hand-overs not yet writing are given back to the outbox, those being
               written finish and record their outcomes (dispatch/worker.py)
    then       providers stop: each SMPP session waits for its outstanding answers, sends unbind
               and waits for unbind_resp; the last group commit; the store closes
    exit 0     within PARTNER_GATEWAY_DRAIN_TIMEOUT_SECONDS of the signal

A worker has no grace (no load balancer sends it partner traffic): its /ready turns 503 and it
drains at once; its ops port answers until the end.

A second SIGTERM or SIGINT, or the deadline, makes the rest fast: requests still running are
cancelled and their connections closed, hand-overs still running are cancelled (one not yet
written to its provider is handed back to the outbox; one written is what a crash leaves, settled
by dispatch/worker.py's rules), and every remaining step gets at most FAST_STEP_SECONDS. The exit
is 0 all the same: what was accepted is in the store, and nothing is lost.

A step that fails (the store unreachable while it stops, say) is one line in the log, never a
traceback, and the next step runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable
from typing import Any

from partner_gateway.api.granian_server import GranianServer
from partner_gateway.api.server import PartnerServer, PartnerServerConfig
from partner_gateway.config import Settings
from partner_gateway.readiness import Readiness

logger = logging.getLogger(__name__)

FAST_STEP_SECONDS = 1.0
"""Once hurried (a second signal, the deadline), how long each remaining step may still take."""

RESERVE_SECONDS = 5.0
"""Of the drain's time, what the hand-overs leave to the steps after them (unbinding, the last
writes): at most this, and at most a fifth of PARTNER_GATEWAY_DRAIN_TIMEOUT_SECONDS."""


class Shutdown:
    """The process's stop signals: the first starts the drain, a second (or the deadline) hurries it."""

    def __init__(self, grace_seconds: float, timeout_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.timeout_seconds = timeout_seconds
        self.requested = asyncio.Event()
        self.hurried = asyncio.Event()
        self.reason: str | None = None  # the signal's name, or why the process stops
        self._deadline: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Shutdown:
        return cls(settings.drain_grace_seconds, settings.drain_timeout_seconds)

    def install(self) -> None:
        """SIGTERM and SIGINT are this object's from now on."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signalled, sig)

    def _signalled(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self.requested.is_set():
            self.hurry(f"a second signal ({name})")
        else:
            self.begin(name)

    def begin(self, reason: str) -> None:
        """Start the drain now; the deadline runs from here."""
        if self.requested.is_set():
            return
        loop = asyncio.get_running_loop()
        self.reason = reason
        self._deadline = loop.time() + self.timeout_seconds
        loop.call_later(self.timeout_seconds, self.hurry, f"the drain took {self.timeout_seconds:g} s")
        self.requested.set()
        logger.info("%s: draining (at most %g s; a second signal stops faster)", reason, self.timeout_seconds)

    def hurry(self, why: str) -> None:
        if not self.hurried.is_set():
            logger.warning("stopping fast: %s", why)
            self.hurried.set()

    @property
    def grace(self) -> float:
        """How long readiness says 503 before the listener closes: SIGTERM's grace; none otherwise."""
        return self.grace_seconds if self.reason == "SIGTERM" else 0.0

    def remaining(self) -> float:
        """Seconds left until the deadline (all of them before the drain begins)."""
        if self._deadline is None:
            return self.timeout_seconds
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    def for_handovers(self) -> float:
        """The time hand-overs may take: what is left, less the reserve of the later steps."""
        reserve = min(RESERVE_SECONDS, self.timeout_seconds / 5)
        return max(0.0, self.remaining() - reserve)

    async def first(self, work: asyncio.Future[Any]) -> bool:
        """Wait for `work` unless the drain is requested first: True when `work` is done (its
        result or error is the caller's), False when the signal came first."""
        await _until(work, self.requested, None)
        return work.done()

    async def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if hurried."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.hurried.wait()

    async def step(self, what: str, work: Awaitable[Any]) -> None:
        """Run one stop step within the time left (FAST_STEP_SECONDS once hurried); a step that fails
        or overruns is one line in the log, and the drain goes on."""
        task = asyncio.ensure_future(work)
        await _until(task, self.hurried, self.remaining())
        if not task.done():  # hurried, or the deadline: a last short while, then it is cut
            await asyncio.wait({task}, timeout=FAST_STEP_SECONDS)
        if not task.done():
            logger.warning("stopping: %s cut short", what)
            task.cancel()
            await asyncio.wait({task})
            return
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.warning("stopping: %s failed: %s: %s", what, type(error).__name__, _first_line(error))


async def drain_http(
    server: PartnerServer | GranianServer,
    serving: asyncio.Task[None],
    shutdown: Shutdown,
    readiness: Readiness,
) -> None:
    """Serve until the drain begins, then: not ready, connections closed after their answers, the
    grace, the listener closed, every request that arrived answered (or, hurried, cancelled)."""
    await _until(serving, shutdown.requested, None)
    if serving.done():  # the server stopped by itself (it failed to start): its error is the caller's
        return
    readiness.stopping(f"the process is shutting down ({shutdown.reason})")
    if isinstance(server, GranianServer):
        server.closing = True
    elif isinstance(server.config, PartnerServerConfig):
        server.config.closing = True
    if shutdown.grace:
        logger.info(
            "draining: /ready answers 503 for %g s, then no new connection is accepted", shutdown.grace
        )
        await shutdown.pause(shutdown.grace)
    if isinstance(server, GranianServer):
        # granian stops accepting, answers what is in flight, then runs the lifespan's shutdown.
        server.stop()
        await _until(serving, shutdown.hurried, None)
        if not serving.done():
            logger.warning("stopping fast: the requests still running are cancelled")
            server.kill()
            await asyncio.wait({serving}, timeout=FAST_STEP_SECONDS)
        return
    config = server.config
    # uvicorn's own bound on answering what is in flight; the deadline (hurry, below) comes first.
    config.timeout_graceful_shutdown = max(1, int(shutdown.remaining()) + 1)
    server.should_exit = True
    await _until(serving, shutdown.hurried, None)
    if not serving.done():
        server.force_exit = True
        running = list(server.server_state.tasks)
        logger.warning("stopping fast: %d requests still running are cancelled", len(running))
        for task in running:
            task.cancel()
        for connection in list(server.server_state.connections):
            connection.transport.close()
        await asyncio.wait({serving}, timeout=FAST_STEP_SECONDS)


async def _until(task: asyncio.Future[Any], event: asyncio.Event, within: float | None) -> None:
    """Wait for `task`, or for `event`, or `within` seconds, whichever comes first."""
    if task.done():
        return
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else "(no message)"
