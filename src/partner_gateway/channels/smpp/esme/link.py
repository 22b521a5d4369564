"""The loop that keeps one bind of an ESME session up: connect, bind, reconnect with back-off."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, Literal

from partner_gateway.channels.smpp.codec.constants import RESPONSE_BIT, CommandId, CommandStatus, status_name
from partner_gateway.channels.smpp.codec.pdu import (
    BindReceiver,
    BindRequest,
    BindTransceiver,
    BindTransmitter,
    GenericNack,
    Unbind,
)
from partner_gateway.channels.smpp.esme.connection import (
    Connection,
    ConnectionClosed,
    MalformedResponse,
    SessionShared,
)
from partner_gateway.channels.smpp.esme.flow import reconnect_delay

log = logging.getLogger("partner_gateway.channels.smpp.esme")

Role = Literal["transceiver", "transmitter", "receiver"]
_S = CommandStatus
_BIND: Final[dict[Role, type[BindRequest]]] = {
    "transceiver": BindTransceiver,
    "transmitter": BindTransmitter,
    "receiver": BindReceiver,
}


class BindFailed(Exception):
    def __init__(self, command_status: int, what: str) -> None:
        super().__init__(f"{what} {status_name(command_status)}")
        self.command_status = command_status


class Link:
    """Keeps one bind (transceiver, transmitter or receiver) up until :meth:`stop`."""

    def __init__(self, shared: SessionShared, role: Role) -> None:
        self.config = config = shared.config
        self.role = role
        self.label = config.name if role == "transceiver" else f"{config.name} ({role})"
        self._shared = shared
        self._counters = shared.counters
        self._handlers = shared.handlers
        self.connection: Connection | None = None
        self.bound = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"smpp-link {self.label}")

    async def _run(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._stopping:
            try:
                connection = await self._open()
            except Exception:  # a bug must not end the reconnect loop for good
                log.exception("%s: unexpected error while connecting", self.label)
                connection = None
            if connection is not None:
                bound_at = loop.time()
                await connection.closed.wait()
                self.bound.clear()
                if not self._stopping:
                    log.warning("%s: link lost (%s)", self.label, connection.close_reason)
                    self._counters.link_error(f"link lost ({connection.close_reason})")
                await connection.aclose(connection.close_reason)
                if loop.time() - bound_at >= config.reconnect_max_delay:
                    attempt = 0  # it was up for a while: start the back-off from the beginning
            if self._stopping:
                return
            delay = reconnect_delay(attempt, config.reconnect_initial_delay, config.reconnect_max_delay)
            attempt += 1
            log.info("%s: reconnecting in %.2fs", self.label, delay)
            await asyncio.sleep(delay)
            self._counters.reconnects += 1

    async def _open(self) -> Connection | None:
        """Connect and bind; None (logged) on failure. Never logs the password."""
        config = self.config
        try:
            async with asyncio.timeout(config.bind_timeout):
                reader, writer = await asyncio.open_connection(config.host, config.port)
        except (OSError, TimeoutError) as exc:
            log.warning("%s: cannot connect to %s:%d: %r", self.label, config.host, config.port, exc)
            self._counters.link_error(f"cannot connect: {exc!r}")
            return None
        self._counters.connects += 1
        connection = Connection(reader, writer, self._shared, self.label)
        bind = config.bind_pdu(_BIND[self.role], connection.next_sequence())
        what = type(bind).__name__
        try:
            response = await connection.request(bind, bind.command_id | RESPONSE_BIT, config.bind_timeout)
            if isinstance(response, GenericNack):
                raise BindFailed(response.command_status, f"{what} answered by generic_nack")
            if response.command_status != _S.ESME_ROK:
                raise BindFailed(response.command_status, f"{what} answered with")
        except (ConnectionClosed, TimeoutError, BindFailed, MalformedResponse) as exc:
            self._counters.bind_failures += 1
            self._counters.link_error(
                f"bind failed: {exc}" if isinstance(exc, BindFailed) else f"bind failed: {exc!r}"
            )
            if isinstance(exc, BindFailed):
                log.error("%s: bind rejected: %s", self.label, exc)
            else:
                log.warning("%s: bind failed: %r", self.label, exc)
            await connection.aclose("bind failed")
            return None
        except BaseException:
            await connection.aclose("cancelled while binding")
            raise
        self._counters.binds += 1
        log.info("%s: bound as %s", self.label, self.role)
        self.connection = connection
        connection.start_keepalive()
        self.bound.set()
        return connection

    async def stop(self, grace: float) -> None:
        """Stop reconnecting; when bound, wait up to ``grace`` for outstanding responses and
        running deliver_sm handlers, unbind (bounded by response_timeout), close."""
        self._stopping = True
        connection = self.connection
        if connection is not None and connection.bound and not connection.closed.is_set():
            busy: list[asyncio.Future[Any]] = [*connection.awaited(), *self._handlers]
            if busy:
                await asyncio.wait(busy, timeout=grace)
            try:
                await connection.request(
                    Unbind(sequence_number=connection.next_sequence()),
                    CommandId.UNBIND_RESP,
                    self.config.response_timeout,
                )
            except (ConnectionClosed, TimeoutError) as exc:
                log.info("%s: no unbind_resp (%r); closing anyway", self.label, exc)
            await connection.aclose("stopped")
        self.abort()
        if self._task is not None:
            await asyncio.wait([self._task])

    def abort(self) -> None:
        """Stop at once without unbinding (the end of :meth:`stop`, or when it was cancelled)."""
        self._stopping = True
        self.bound.clear()
        if self.connection is not None:
            self.connection.close("stopped")
        if self._task is not None:
            self._task.cancel()
