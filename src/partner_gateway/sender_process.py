"""The callback sender in a process of its own (`PARTNER_GATEWAY_CALLBACK_SENDER=process`, the
default): a child of each process that delivers (the embedded `serve`, each `worker`).

Why a process: a callback costs about as much CPU as its message's whole trip through the
gateway (two POSTs per SMS and their outcomes; docs/performance.md "Status callbacks"). On the
delivering process's loop that CPU is taken from sending and receipts; in a child it runs on
another core, and the delivering process spends on callbacks only the events it writes in each
change's transaction and a wake-up byte per commit.

The child is an ordinary sender (callbacks/sender.py): it claims due events from the store as
any sender of a cluster does, so no event passes between the processes, only wake-ups and the
metrics of what it attempted. Nothing is lost when either dies: events are rows, and claims end
(at the next embedded start, or after the lease).

    parent (SenderProcess)                       child (`python -m partner_gateway.sender_process`)
    its settings, pickled, on the child's stdin -> Runtime.start, CallbackSender.start; "ready" on stdout
    a byte after each commit that wrote events  -> wake: claims them now, not at its next poll
    <- a JSON line a second: the attempts' outcomes and durations, counted in the parent's /metrics
    stdin closed (the parent stops)             -> stops claiming, cancels attempts, closes the store
    the parent dies (on Linux PR_SET_PDEATHSIG, -> the child ends at once (as a SIGKILLed sender:
      elsewhere the end of its stdin)              its claims are retaken)

The child ignores SIGINT and SIGTERM: a terminal's Ctrl-C reaches the whole process group, and a
service manager may signal every process of the service at once, while the parent must stop it
in order (before its pipeline drains). Only its stdin's end stops it (or SIGKILL).

A child that dies is started again after 1 s, doubling to 30 s while it keeps dying.

On SQLite the child is a second writer of the store: its commits (claims, outcomes) do not fsync
(synchronous=NORMAL): a power cut may undo its last outcomes, and those callbacks are sent again,
which at least once allows; the messages' own commits stay FULL in the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import pickle
import signal
import struct
import sys
import time
from pathlib import Path

from partner_gateway.callbacks.sender import CallbackSender
from partner_gateway.config import Settings
from partner_gateway.observability import metrics
from partner_gateway.observability.logs import configure_logging
from partner_gateway.runtime import Runtime
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.database import Database
from partner_gateway.store.outages import log_failure

logger = logging.getLogger(__name__)

START_SECONDS = 60.0
"""How long the child may take to open the store and start (a slow store at boot)."""
STOP_SECONDS = 10.0
REPORT_SECONDS = 1.0
REPORT_CHUNK = 256
"""Attempts per report line (about 7 KB): a burst (a backlog sent at 1,600/s) makes several lines."""
REPORT_LINE_LIMIT = 2**20
MAX_UNSENT_REPORT_BYTES = 2**20
"""Reports the parent has not read yet past this are dropped (and logged), never waited for."""
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
COMMIT_LINGER_SECONDS = 0.05
"""The child's writes (claims, outcomes) gather for this long into one transaction, instead of a
claim per wake-up and a commit per answer. On SQLite each of its transactions takes the store's
one write lock from the parent's commits; gathered, bench/callbacks.py's backlog rate rose from
1,170 to 1,600 callbacks/s and the parent's extra CPU per message fell by half (docs/performance.md).
A callback waits up to this much longer."""
STABLE_SECONDS = 30.0
"""A child that ran this long before dying is restarted after the first delay again."""
_MODULE = "partner_gateway.sender_process"
_READY = b"ready\n"
_WAKE = b"w"
_PR_SET_PDEATHSIG = 1


class SenderProcessError(RuntimeError):
    """The callback sender process could not be started."""


class SenderProcess:
    """The delivering process's handle on its callback sender process: starts it, wakes it after
    each commit that wrote events (it is the store's `handoff`, taking nothing in memory),
    counts what it reports, starts it again if it dies, and stops it."""

    lease_ms = 0

    def __init__(self, settings: Settings, database: Database, *, exclusive: bool) -> None:
        self._settings = settings
        self._database = database
        self._exclusive = exclusive
        self._process: asyncio.subprocess.Process | None = None
        self._reading: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self.starts = 0
        """How many children were started (1 while the first one lives)."""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="callback-sender-supervisor")
        self._database.handoff = self

    def room(self) -> int:
        return 0  # the child claims its events from the store

    def take_fresh(self, _events: object) -> None:
        self.wake()

    def wake(self) -> None:
        """One byte to the child's stdin (a write call per commit), none while the pipe is full
        and bytes wait in this process: the child's unread wake-ups already make it claim
        everything committed before it reads them."""
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            return
        transport = process.stdin.transport
        if not transport.is_closing() and transport.get_write_buffer_size() == 0:
            with contextlib.suppress(OSError):
                transport.write(_WAKE)

    async def stop(self) -> None:
        if self._database.handoff is self:
            self._database.handoff = None
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await self._end_child()

    async def _spawn(self) -> None:
        self.starts += 1
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            _MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=REPORT_LINE_LIMIT,
        )  # its stderr is ours: its log lines go where this process's go
        assert process.stdin is not None
        assert process.stdout is not None
        self._process = process
        payload = pickle.dumps((self._settings, self._exclusive, os.getpid()))
        process.stdin.write(struct.pack(">I", len(payload)) + payload)
        try:
            ready = await asyncio.wait_for(process.stdout.readline(), START_SECONDS)
        except TimeoutError:
            await self._end_child()
            raise SenderProcessError(
                f"the callback sender process did not start in {START_SECONDS:.0f} s"
            ) from None
        if ready != _READY:
            code = await process.wait()
            self._process = None
            raise SenderProcessError(
                f"the callback sender process exited while starting (code {code}; its log above says why)"
            )
        self._reading = asyncio.create_task(
            self._read_reports(process.stdout), name="callback-sender-reports"
        )
        logger.info("callbacks: sender process %d started", process.pid)

    async def _read_reports(self, stdout: asyncio.StreamReader) -> None:
        """Until the child's stdout ends. Read it must be, whatever a line holds: a child whose
        reports nobody reads would find its pipe full (it then drops them, see _Reports)."""
        while True:
            try:
                line = await stdout.readline()
            except ValueError:  # a line over the limit (this version's child writes none)
                logger.warning(
                    "callbacks: the sender process wrote a report line over %d bytes", REPORT_LINE_LIMIT
                )
                continue
            if not line:
                return
            try:
                for outcome, seconds in json.loads(line)["attempts"]:
                    metrics.callback_attempted(str(outcome), float(seconds))
            except (ValueError, KeyError, TypeError):
                logger.warning("callbacks: the sender process wrote an unreadable report line")

    async def _supervise(self) -> None:
        delay = RESTART_FIRST_SECONDS
        while True:
            process = self._process
            started = time.monotonic()
            code = await process.wait() if process is not None else None
            if self._reading is not None:
                await asyncio.gather(self._reading, return_exceptions=True)
            if time.monotonic() - started >= STABLE_SECONDS:
                delay = RESTART_FIRST_SECONDS
            logger.error(
                "callbacks: the sender process exited (code %s); starting another in %.0f s", code, delay
            )
            metrics.callback_sender_restarted()
            await asyncio.sleep(delay)
            delay = min(2 * delay, RESTART_MAX_SECONDS)
            try:
                await self._spawn()
            except (SenderProcessError, OSError) as error:
                logger.error("callbacks: %s", error)

    async def _end_child(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            if process.stdin is not None:  # its signal to stop
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except TimeoutError:
                logger.warning("callbacks: the sender process did not stop in %.0f s; killed", STOP_SECONDS)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)
            self._reading = None


def sender_processes_of(parent_pid: int) -> list[int]:
    """The callback sender processes a gateway process runs, as Linux's /proc shows them (for
    an operator's script, the bench and the tests; [] elsewhere): children of `parent_pid`
    running this module, alive (a container's init may leave a dead one unreaped)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(ppid) == parent_pid and state not in ("Z", "X") and _MODULE.encode() in command:
            found.append(int(stat.parent.name))
    return found


# -- the child -------------------------------------------------------------------------------------


class _Wakes(asyncio.Protocol):
    """The child's stdin after the settings: each byte a wake-up; its end, the parent's."""

    def __init__(self, sender: CallbackSender, ended: asyncio.Event) -> None:
        self._sender = sender
        self._ended = ended

    def data_received(self, data: bytes) -> None:
        self._sender.wake()

    def eof_received(self) -> bool:
        self._ended.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended.set()


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        chunk = os.read(fd, size - len(chunks))
        if not chunk:
            raise EOFError("the parent closed the sender process's stdin while starting it")
        chunks += chunk
    return chunks


def _die_with_parent(parent_pid: int) -> None:
    """On Linux the kernel kills this process when its parent dies, even by SIGKILL; elsewhere
    the end of stdin stops it. A parent already gone before the request: end now."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        raise SystemExit(0)


class _Reports:
    """The child's stdout, written without ever blocking its loop: a blocking write to a full
    pipe would stop every attempt, and with them any write transaction it has open (on SQLite,
    the store's write lock for every process). A parent too slow to read loses reports, not
    callbacks."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport
        self.dropped = 0

    def write(self, line: bytes) -> None:
        if self._transport.is_closing():
            return
        if self._transport.get_write_buffer_size() > MAX_UNSENT_REPORT_BYTES:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("callbacks: %d reports dropped: the parent does not read them", self.dropped)
            return
        self._transport.write(line)

    def attempts(self, attempts: list[tuple[str, float]]) -> None:
        for start in range(0, len(attempts), REPORT_CHUNK):
            self.write(json.dumps({"attempts": attempts[start : start + REPORT_CHUNK]}).encode() + b"\n")

    async def close(self) -> None:
        """What is buffered goes out first (for up to a second)."""
        for _ in range(100):
            if not self._transport.get_write_buffer_size():
                break
            await asyncio.sleep(0.01)
        self._transport.close()


async def _run_child(settings: Settings, exclusive: bool) -> None:
    runtime = await Runtime.start(settings, fsync_commits=False)
    runtime.writes = WriteBatcher(runtime.database, linger_seconds=COMMIT_LINGER_SECONDS)
    attempts: list[tuple[str, float]] = []
    try:
        runtime.writes.start()
        sender = CallbackSender(
            settings,
            runtime.database,
            runtime.writes,
            runtime.callback_urls,
            runtime.callback_secrets,
            exclusive=exclusive,
            on_attempt=lambda outcome, seconds: attempts.append((outcome, round(seconds, 6))),
        )
        await sender.start()
        loop = asyncio.get_running_loop()
        ended = asyncio.Event()
        await loop.connect_read_pipe(lambda: _Wakes(sender, ended), sys.stdin.buffer)
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout.buffer)
        reports = _Reports(transport)
        reports.write(_READY)

        def report() -> None:
            if attempts:
                reports.attempts(attempts)
                attempts.clear()

        while not ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), REPORT_SECONDS)
            report()
        await sender.stop()
        report()
        await reports.close()
    finally:
        try:  # what it could not record is sent again by the next sender (at least once)
            await runtime.close()
        except Exception as error:  # the store away while stopping: one line, as the parent's drain
            log_failure(logger, error, "callbacks: the sender process's last writes failed")


def main() -> None:
    for ignored in (signal.SIGINT, signal.SIGTERM):  # the parent stops it, in order (module doc)
        signal.signal(ignored, signal.SIG_IGN)
    (length,) = struct.unpack(">I", _read_exactly(0, 4))
    settings, exclusive, parent_pid = pickle.loads(_read_exactly(0, length))  # noqa: S301 - our parent's
    _die_with_parent(parent_pid)
    configure_logging(settings.log_level, settings.log_format)
    from partner_gateway.cli.common import run_loop  # uvloop where built, as every command runs

    try:
        run_loop(_run_child(settings, exclusive))
    except Exception as error:  # the store away at its start, say: one line; the parent starts another
        log_failure(logger, error, "callbacks: the sender process stopped")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
