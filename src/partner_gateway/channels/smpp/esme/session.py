"""asyncio SMPP 3.4 client (ESME) session: bind, keep alive, submit, receive deliver_sm.

Usage::

    session = EsmeSession(config, on_deliver=store_receipt)  # on_deliver returns a command_status
    await session.start()                                    # connects and binds in the background
    resp = await session.submit(SubmitSm(sequence_number=0, destination_addr="316...", ...))
    await session.stop()                                     # unbind, close

``submit`` raises one of (see :mod:`~partner_gateway.channels.smpp.esme.errors`)::

    EsmeError
    ├── NotConnected                 never written: nothing reached the SMSC, safe to resend
    ├── SubmitRejected               the SMSC answered with an error (command_status, transient)
    │   └── InvalidSubmit            refused before writing: the codec cannot encode the PDU (permanent)
    └── OutcomeUnknown               written, but no usable answer: the SMSC may have accepted it;
        │                            do not resend blindly
        ├── ResponseTimeout          no submit_sm_resp within response_timeout
        └── ConnectionLostAfterWrite the connection ended (or the session stopped) before the answer

Guarantees:

* window: never more than ``config.window`` submit_sm written and unanswered. A submit that timed
  out gives its slot back (its late answer is logged and counted, not matched).
* throughput: a token bucket paces writes to ``throughput_per_second`` (bursts of ~50 ms).
* ESME_RTHROTTLED / ESME_RMSGQFUL pause every new submit for ``throttle_initial_delay``, doubling
  on repeats up to ``throttle_max_delay``; a success resets it.
* deliver_sm is answered only after ``on_deliver`` returns, with the status it returned;
  ESME_RX_T_APPN (the SMSC redelivers later) when it raises or runs past ``deliver_timeout``.
  Handlers run concurrently, at most ``deliver_concurrency`` at once; beyond that the session stops
  reading the socket (backpressure) instead of queueing without bound.
* a connection is dropped and re-made (exponential back-off with jitter) on: EOF or socket error,
  no enquire_link_resp within ``response_timeout``, an unbind from the SMSC, a generic_nack that
  answers nothing, an unusable byte stream. Bind failures are logged with the status name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import struct
from collections.abc import Awaitable, Callable

from partner_gateway.channels.smpp.codec.constants import CommandId, status_name
from partner_gateway.channels.smpp.codec.encoder import encode
from partner_gateway.channels.smpp.codec.pdu import GenericNack, PduError, SubmitSm, SubmitSmResp
from partner_gateway.channels.smpp.esme.config import EsmeConfig, EsmeCounters
from partner_gateway.channels.smpp.esme.connection import (
    ConnectionClosed,
    DeliverHandler,
    MalformedResponse,
    SessionShared,
    consume,
)
from partner_gateway.channels.smpp.esme.errors import (
    THROTTLING_STATUSES,
    ConnectionLostAfterWrite,
    InvalidSubmit,
    NotConnected,
    OutcomeUnknown,
    ResponseTimeout,
    SubmitRejected,
)
from partner_gateway.channels.smpp.esme.flow import RateLimiter, ThrottlePause
from partner_gateway.channels.smpp.esme.link import Link, Role

log = logging.getLogger("partner_gateway.channels.smpp.esme")


class EsmeSession:
    """One SMPP account at one SMSC: a transceiver bind, or a transmitter + receiver pair."""

    def __init__(self, config: EsmeConfig, on_deliver: DeliverHandler) -> None:
        self.config = config
        self.counters = EsmeCounters()
        self._window = asyncio.Semaphore(config.window)
        self._handlers: set[asyncio.Task[None]] = set()
        shared = SessionShared(
            config, self.counters, on_deliver, asyncio.Semaphore(config.deliver_concurrency), self._handlers
        )
        self._rate = (
            None if config.throughput_per_second is None else RateLimiter(config.throughput_per_second)
        )
        self._throttle = ThrottlePause(config.throttle_initial_delay, config.throttle_max_delay)
        roles: tuple[Role, ...] = (
            ("transceiver",) if config.bind_mode == "transceiver" else ("transmitter", "receiver")
        )
        self._links = [Link(shared, role) for role in roles]
        self._submit_link = self._links[0]
        self._in_flight = 0
        self._state = "new"
        self._stop_requested = asyncio.Event()
        self._stopped = asyncio.Event()

    # -- state ----------------------------------------------------------------------------------
    @property
    def is_bound(self) -> bool:
        """Every connection of the session is bound (submits need only the transmitter)."""
        return self._state == "running" and all(link.bound.is_set() for link in self._links)

    @property
    def paused_for(self) -> float:
        """Seconds left of the pause the SMSC's throttling answers started (0: not paused)."""
        return self._throttle.remaining

    @property
    def outstanding(self) -> int:
        """submit_sm written and not yet answered."""
        return self._in_flight

    async def wait_bound(self, timeout: float) -> bool:  # noqa: ASYNC109 - returns False, never raises
        """Wait up to ``timeout`` seconds for :attr:`is_bound`; returns it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for link in self._links:
            if not await self._wait_event(link.bound, deadline - loop.time()):
                return False
        return self.is_bound

    async def _wait_event(self, event: asyncio.Event, within: float) -> bool:
        """Wait for ``event`` but give up after ``within`` seconds or when stop() is called."""
        if event.is_set():
            return True
        if self._stop_requested.is_set() or within <= 0:
            return False
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stop_requested.wait())]
        try:
            await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.wait(waiters)
        return event.is_set() and not self._stop_requested.is_set()

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and bind in the background; returns at once (see :meth:`wait_bound`)."""
        if self._state != "new":
            raise RuntimeError(f"EsmeSession {self.config.name} is {self._state}; start() runs once")
        self._state = "running"
        for link in self._links:
            link.start()

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new submits, wait up to ``grace`` (default response_timeout) for outstanding
        responses and deliver_sm handlers, unbind (bounded), close. Idempotent."""
        if self._state in ("stopping", "stopped"):
            await self._stopped.wait()
            return
        was_running = self._state == "running"
        self._state = "stopping"
        self._stop_requested.set()
        try:
            if was_running:
                grace = self.config.response_timeout if grace is None else grace
                await asyncio.gather(*(link.stop(grace) for link in self._links))
            handlers = list(self._handlers)
            for task in handlers:  # their deliver_sm_resp can no longer be sent: the SMSC redelivers
                task.cancel()
            if handlers:
                await asyncio.wait(handlers)
        finally:  # also when stop() itself is cancelled: nothing may keep running
            for link in self._links:
                link.abort()
            self._state = "stopped"
            self._stopped.set()

    # -- submit ---------------------------------------------------------------------------------
    async def submit(
        self, pdu: SubmitSm, *, before_write: Callable[[], Awaitable[None]] | None = None
    ) -> SubmitSmResp:
        """Write ``pdu`` (the session sets its sequence_number) and wait for its submit_sm_resp.

        Returns the ESME_ROK response (``message_id``); every other outcome raises an
        :class:`EsmeError` (see the module docstring). ``before_write`` runs once the PDU holds a
        window slot and a throughput token, just before its bytes go out: the gateway records
        there, durably, that the message is about to be handed over.
        """
        if not isinstance(pdu, SubmitSm):
            raise TypeError(f"submit() takes a SubmitSm, got {type(pdu).__name__}")
        if pdu.sequence_number or pdu.command_status:  # the provider's are 0: no copy to make
            pdu = dataclasses.replace(pdu, sequence_number=0, command_status=0)
        try:  # validate and encode once, up front; the sequence_number is patched in later
            frame = bytearray(encode(pdu))
        except PduError as exc:
            raise InvalidSubmit(exc.command_status, exc.detail) from None
        link = self._submit_link
        if self._state != "running":
            raise self._not_connected(f"session is {self._state}")
        if not await self._wait_event(link.bound, self.config.submit_bind_wait):
            reason = "session stopping" if self._stop_requested.is_set() else "not bound"
            raise self._not_connected(f"{reason} within {self.config.submit_bind_wait}s")
        async with self._window:
            await self._pace()
            if before_write is not None:
                await before_write()
            connection = link.connection
            if self._stop_requested.is_set() or connection is None or not connection.bound:
                raise self._not_connected("link went down before writing")
            seq = connection.next_sequence()
            struct.pack_into(">I", frame, 12, seq)
            try:
                future = connection.send(bytes(frame), expect=CommandId.SUBMIT_SM_RESP)
            except ConnectionClosed as exc:
                raise self._not_connected(f"link went down before writing: {exc.reason}") from None
            assert future is not None  # send returns a future whenever expect is given
            self.counters.submits_written += 1
            self._in_flight += 1
            try:
                async with asyncio.timeout(self.config.response_timeout):
                    await connection.drain()
                    response = await future
            except TimeoutError:
                self.counters.submit_timeouts += 1
                raise ResponseTimeout(
                    f"no submit_sm_resp within {self.config.response_timeout}s", sequence_number=seq
                ) from None
            except ConnectionClosed as exc:
                self.counters.submit_connection_lost += 1
                raise ConnectionLostAfterWrite(
                    f"connection lost after write: {exc.reason}", sequence_number=seq
                ) from None
            except MalformedResponse as exc:
                return self._rejected_or_unknown(exc, seq)
            finally:
                self._in_flight -= 1
                connection.forget(seq)
                consume(future)
        return self._outcome(response, seq)

    def _not_connected(self, reason: str) -> NotConnected:
        self.counters.submit_not_connected += 1
        return NotConnected(f"{self.config.name}: {reason}")

    async def _pace(self) -> None:
        """Wait out a throttling pause, then take a throughput token (again if a pause began)."""
        while True:
            await self._throttle.wait()
            if self._rate is not None:
                await self._rate.acquire()
            if self._throttle.remaining <= 0:
                return

    def _outcome(self, response: object, seq: int) -> SubmitSmResp:
        if isinstance(response, GenericNack):
            self.counters.submit_generic_nacks += 1
            raise SubmitRejected(
                response.command_status, transient=True, generic_nack=True, sequence_number=seq
            )
        if not isinstance(response, SubmitSmResp):  # pragma: no cover - the reader matches command ids
            raise OutcomeUnknown(
                f"unexpected answer {response!r}", sequence_number=seq, reason="malformed_response"
            )
        status = response.command_status
        self.counters.submit_responses[int(status)] += 1
        if status == 0:
            self._throttle.succeeded()
            return response
        if status in THROTTLING_STATUSES:
            pause = self._throttle.throttled()
            if pause is not None:
                self.counters.throttle_pauses += 1
                log.warning("%s: %s; pausing submits for %.2fs", self.config.name, status_name(status), pause)
        raise SubmitRejected.from_status(status, sequence_number=seq)

    def _rejected_or_unknown(self, exc: MalformedResponse, seq: int) -> SubmitSmResp:
        if exc.command_status != 0:  # the header says rejected; the unreadable body does not matter
            return self._outcome(SubmitSmResp(sequence_number=seq, command_status=exc.command_status), seq)
        raise OutcomeUnknown(
            f"submit_sm_resp ESME_ROK with an unreadable body: {exc}",
            sequence_number=seq,
            reason="malformed_response",
        )
