"""One TCP connection of an ESME session (:class:`Connection`).

It reads and answers PDUs, correlates responses with requests by sequence_number, runs deliver_sm
handlers (bounded, answering only when they return) and the enquire_link keep-alive. It never
reconnects: it closes, and :mod:`~partner_gateway.channels.smpp.esme.link` makes a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from partner_gateway.channels.smpp.codec.constants import RESPONSE_BIT, CommandId, CommandStatus, status_name
from partner_gateway.channels.smpp.codec.decoder import decode
from partner_gateway.channels.smpp.codec.encoder import encode
from partner_gateway.channels.smpp.codec.framing import PduReader
from partner_gateway.channels.smpp.codec.pdu import (
    RESPONSE_TO,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    PduError,
    Unbind,
    UnbindResp,
)
from partner_gateway.channels.smpp.esme.config import EsmeConfig, EsmeCounters

log = logging.getLogger("partner_gateway.channels.smpp.esme")

DeliverHandler = Callable[[DeliverSm], Awaitable[int]]
"""Stores a deliver_sm (receipt or MO) and returns the command_status for its deliver_sm_resp."""


@dataclass(frozen=True, slots=True)
class SessionShared:
    """What every connection of one session shares, handed down from the session through its links."""

    config: EsmeConfig
    counters: EsmeCounters
    on_deliver: DeliverHandler
    deliver_slots: asyncio.Semaphore
    """deliver_sm handlers running at once, across the session's connections."""
    handlers: set[asyncio.Task[None]]
    """The deliver_sm handlers running, so the session's stop() can wait for them."""


_S = CommandStatus
_ALERT_NOTIFICATION: Final = 0x00000102  # SMPP 3.4 4.12: no response is defined for it
_MAX_SEQUENCE: Final = 0x7FFFFFFF


class ConnectionClosed(Exception):
    """The connection ended while a request waited for its response (or before it was written)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedResponse(Exception):
    """A response matched a request but its body could not be parsed; the header status is kept."""

    def __init__(self, command_status: int, detail: str) -> None:
        super().__init__(detail)
        self.command_status = command_status


def consume(future: asyncio.Future[Pdu]) -> None:
    """Mark a future's outcome as seen (no "exception was never retrieved" noise) or cancel it."""
    if future.done():
        if not future.cancelled():
            future.exception()
    else:
        future.cancel()


class Connection:
    """One TCP connection: the reader task, request/response correlation, keep-alive, deliver_sm."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, shared: SessionShared, label: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.label = label
        # Each held directly, not read through `shared`: handling a deliver_sm reads them per PDU.
        self._config = shared.config
        self._counters = shared.counters
        self._on_deliver = shared.on_deliver
        self._deliver_slots = shared.deliver_slots
        self._handlers = shared.handlers
        self._pending: dict[int, tuple[int, asyncio.Future[Pdu]]] = {}
        # Frames written in one pass of the event loop leave in one write (see send).
        self._unwritten: list[bytes] = []
        self._sequence = 0
        self._reader_paused = False  # waiting for a deliver_sm handler slot
        self.bound = False
        self.closed = asyncio.Event()
        self.close_reason = ""
        self._tasks: list[asyncio.Task[None]] = [asyncio.create_task(self._read_loop())]

    # -- requests -------------------------------------------------------------------------------
    def awaited(self) -> list[asyncio.Future[Pdu]]:
        """Futures of the requests still waiting for a response."""
        return [future for _, future in self._pending.values()]

    def next_sequence(self) -> int:
        while True:
            self._sequence = self._sequence % _MAX_SEQUENCE + 1
            if self._sequence not in self._pending:
                return self._sequence

    def send(self, frame: bytes, *, expect: int | None = None) -> asyncio.Future[Pdu] | None:
        """Write one frame; with ``expect`` (a response command_id) return the future of its answer.

        Raises :class:`ConnectionClosed` when nothing could be written.
        """
        if self.closed.is_set() or self._writer.is_closing():
            raise ConnectionClosed(self.close_reason or "connection closing")
        future: asyncio.Future[Pdu] | None = None
        if expect is not None:
            seq = struct.unpack_from(">I", frame, 12)[0]
            future = asyncio.get_running_loop().create_future()
            self._pending[seq] = (expect, future)
        # Held until the end of the event loop's pass: a window's submit_sm and the responses to
        # a burst of deliver_sm then cost one socket write together instead of one each.
        if not self._unwritten:
            asyncio.get_running_loop().call_soon(self._write_unwritten)
        self._unwritten.append(frame)
        return future

    def _write_unwritten(self) -> None:
        frames, self._unwritten = self._unwritten, []
        if frames and not self._writer.is_closing():
            self._writer.write(b"".join(frames))

    def forget(self, sequence_number: int) -> None:
        entry = self._pending.pop(sequence_number, None)
        if entry is not None:
            consume(entry[1])

    async def drain(self) -> None:
        self._write_unwritten()
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self.close(f"write failed: {exc!r}")
            raise ConnectionClosed(self.close_reason) from None

    async def request(self, pdu: Pdu, expect: int, within: float) -> Pdu:
        """Send a request built by the caller and wait (bounded) for its response."""
        future = self.send(encode(pdu), expect=expect)
        assert future is not None  # send returns a future whenever expect is given
        try:
            await self.drain()
            async with asyncio.timeout(within):
                return await future
        finally:
            self.forget(pdu.sequence_number)

    # -- lifecycle ------------------------------------------------------------------------------
    def start_keepalive(self) -> None:
        self.bound = True
        self._tasks.append(asyncio.create_task(self._keepalive()))

    def close(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.bound = False
        self.closed.set()
        self._write_unwritten()  # what was sent before the close still leaves, as it did unheld
        self._writer.close()
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionClosed(reason))
                future.exception()  # the waiter (if any) still gets it; no "never retrieved" noise
        self._pending.clear()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    async def aclose(self, reason: str) -> None:
        """Close and wait (briefly) for the socket and the connection's own tasks to finish."""
        self.close(reason)
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        if tasks:
            await asyncio.wait(tasks, timeout=self._config.response_timeout)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._config.response_timeout):
                await self._writer.wait_closed()

    # -- reading --------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        frames_of = PduReader()
        try:
            while not self.closed.is_set():
                data = await self._reader.read(65536)
                if not data:
                    self.close("connection closed by the SMSC")
                    return
                try:
                    frames = frames_of.feed(data)
                except PduError as exc:
                    self._framing_error(exc)
                    return
                for frame in frames:
                    await self._on_frame(frame)
                    if self.closed.is_set():
                        return
                if frames_of.error is not None:
                    self._framing_error(frames_of.error)
                    return
        except (ConnectionError, OSError) as exc:
            self.close(f"read failed: {exc!r}")
        except Exception as exc:  # a bug here must not leave a half-alive connection behind
            log.exception("%s: reader failed", self.label)
            self.close(f"reader failed: {exc!r}")

    def _framing_error(self, exc: PduError) -> None:
        self._counters.unexpected_pdus += 1
        log.warning("%s: unusable byte stream (%s); reconnecting", self.label, exc)
        self._answer(GenericNack(sequence_number=exc.sequence_number, command_status=exc.command_status))
        self.close(f"framing error: {status_name(exc.command_status)}")

    def _answer(self, pdu: Pdu) -> None:
        with contextlib.suppress(ConnectionClosed):
            self.send(encode(pdu))

    async def _on_frame(self, frame: bytes) -> None:
        try:
            pdu = decode(frame)
        except PduError as exc:
            self._bad_frame(frame, exc)
            return
        if isinstance(pdu, GenericNack):
            self._on_generic_nack(pdu)
        elif pdu.command_id & RESPONSE_BIT:
            self._resolve(pdu.sequence_number, pdu.command_id, pdu)
        elif isinstance(pdu, EnquireLink):
            self._counters.enquire_links_received += 1
            self._answer(EnquireLinkResp(sequence_number=pdu.sequence_number))
        elif isinstance(pdu, DeliverSm):
            await self._dispatch_deliver(pdu)
        elif isinstance(pdu, Unbind):
            log.warning("%s: the SMSC unbound; reconnecting", self.label)
            self._answer(UnbindResp(sequence_number=pdu.sequence_number))
            self.close("unbind from the SMSC")
        else:  # submit_sm or a bind sent to us: an ESME does not take these
            self._counters.unexpected_pdus += 1
            log.warning("%s: unexpected %s from the SMSC", self.label, type(pdu).__name__)
            self._answer(GenericNack(sequence_number=pdu.sequence_number, command_status=_S.ESME_RINVCMDID))

    def _resolve(self, seq: int, command_id: int, result: Pdu | BaseException) -> bool:
        entry = self._pending.get(seq)
        if entry is None or not (command_id == entry[0] or command_id == CommandId.GENERIC_NACK):
            self._counters.unexpected_pdus += 1
            log.warning(
                "%s: response 0x%08x sequence_number=%d matches no outstanding request (late?)",
                self.label,
                command_id,
                seq,
            )
            return False
        del self._pending[seq]
        future = entry[1]
        if not future.done():
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        return True

    def _on_generic_nack(self, nack: GenericNack) -> None:
        entry = self._pending.get(nack.sequence_number)
        if entry is not None:
            self._resolve(nack.sequence_number, nack.command_id, nack)
            return
        self._counters.unexpected_pdus += 1
        log.warning(
            "%s: generic_nack %s sequence_number=%d matches no request: framing trouble, reconnecting",
            self.label,
            status_name(nack.command_status),
            nack.sequence_number,
        )
        self.close("unmatched generic_nack")

    def _bad_frame(self, frame: bytes, exc: PduError) -> None:
        self._counters.unexpected_pdus += 1
        command_id = exc.command_id if exc.command_id is not None else 0
        seq = exc.sequence_number
        log.warning("%s: cannot parse a PDU: %s", self.label, exc)
        if command_id == CommandId.GENERIC_NACK:
            return  # never answer a nack with a nack
        if command_id == _ALERT_NOTIFICATION:
            return  # not in our codec, and it takes no response
        response = RESPONSE_TO.get(command_id)
        if response is not None:  # a request we know, with a bad body: its own *_resp carries the error
            self._answer(response(sequence_number=seq, command_status=exc.command_status))
            return
        self._answer(GenericNack(sequence_number=seq, command_status=exc.command_status))
        if command_id & RESPONSE_BIT and seq in self._pending:
            header_status = struct.unpack_from(">I", frame, 8)[0]
            self._resolve(seq, command_id, MalformedResponse(header_status, str(exc)))

    # -- deliver_sm -----------------------------------------------------------------------------
    async def _dispatch_deliver(self, pdu: DeliverSm) -> None:
        self._counters.deliver_sm_received += 1
        self._reader_paused = True  # backpressure: stop reading while every handler slot is busy
        try:
            await self._deliver_slots.acquire()
        finally:
            self._reader_paused = False
        task = asyncio.create_task(self._handle_deliver(pdu))
        self._handlers.add(task)
        task.add_done_callback(self._deliver_done)

    def _deliver_done(self, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        self._deliver_slots.release()  # here, not in the coroutine: also runs if it never started

    async def _handle_deliver(self, pdu: DeliverSm) -> None:
        status: int = _S.ESME_RX_T_APPN
        try:
            async with asyncio.timeout(self._config.deliver_timeout):
                result = await self._on_deliver(pdu)
            if isinstance(result, int) and not isinstance(result, bool) and 0 <= result <= 0xFFFFFFFF:
                status = result
            else:
                log.error("%s: deliver_sm handler returned %r, not a command_status", self.label, result)
        except TimeoutError:
            log.error(
                "%s: deliver_sm handler still running after %ss", self.label, self._config.deliver_timeout
            )
        except Exception:
            log.exception("%s: deliver_sm handler failed; answering ESME_RX_T_APPN", self.label)
        try:
            self.send(encode(DeliverSmResp(sequence_number=pdu.sequence_number, command_status=status)))
        except ConnectionClosed:
            log.warning(
                "%s: deliver_sm sequence_number=%d handled but the connection is gone; the SMSC will "
                "redeliver it",
                self.label,
                pdu.sequence_number,
            )
            return
        self._counters.deliver_sm_responses[int(status)] += 1

    # -- keep-alive -----------------------------------------------------------------------------
    async def _keepalive(self) -> None:
        config = self._config
        while not self.closed.is_set():
            await asyncio.sleep(config.enquire_link_interval)
            seq = self.next_sequence()
            self._counters.enquire_links_sent += 1
            try:
                await self.request(
                    EnquireLink(sequence_number=seq), CommandId.ENQUIRE_LINK_RESP, config.response_timeout
                )
            except ConnectionClosed:
                return
            except TimeoutError:
                self._counters.enquire_link_timeouts += 1
                if self._reader_paused:
                    continue  # the answer is unread behind busy deliver_sm handlers, not missing
                log.warning(
                    "%s: no enquire_link_resp within %ss; the link is dead, reconnecting",
                    self.label,
                    config.response_timeout,
                )
                self.close("enquire_link timeout")
                return
