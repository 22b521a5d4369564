"""The SMSC simulator: an asyncio TCP server speaking SMPP 3.4 to the gateway's ESME on loopback."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from types import TracebackType
from typing import Final, Self

from partner_gateway.channels.smpp.codec.pdu import DeliverSm
from partner_gateway.simulators.smsc.config import SmscConfig, SmscScript, SmscStats
from partner_gateway.simulators.smsc.dispatch import ReceiptDispatcher
from partner_gateway.simulators.smsc.fates import MessageIds
from partner_gateway.simulators.smsc.mo import Concatenation, mo_pdus
from partner_gateway.simulators.smsc.session import SmscSession

logger = logging.getLogger("partner_gateway.simulators.smsc")

STOP_TIMEOUT_SECONDS: Final = 2.0


class SmscSimulator:
    """A simulated SMSC. ``script`` (an :class:`SmscScript`) may be changed or replaced while it runs;
    ``stats`` counts what happened. Use ``async with SmscSimulator(config) as smsc:`` or
    :meth:`start` / :meth:`stop`."""

    def __init__(self, config: SmscConfig | None = None, *, script: SmscScript | None = None) -> None:
        self.config = config or SmscConfig()
        self.script = script or SmscScript()
        self.stats = SmscStats()
        self.rng = random.Random(self.config.seed)  # noqa: S311 - delays and ids of a test double, not secrets
        self.ids = MessageIds(self.rng.randrange(10**8, 10**9))
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._dispatcher: ReceiptDispatcher | None = None
        self._sessions: set[SmscSession] = set()
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def dispatcher(self) -> ReceiptDispatcher:
        if self._dispatcher is None:
            raise RuntimeError("the SMSC simulator is not running")
        return self._dispatcher

    @property
    def pending_receipts(self) -> int:
        """Receipts scheduled, in flight or waiting to be resent (not yet acknowledged or abandoned)."""
        return 0 if self._dispatcher is None else self._dispatcher.pending

    async def start(self) -> int:
        """Listen on ``config.host``/``config.port``; returns the port bound (useful with port 0)."""
        if self._server is not None:
            raise RuntimeError("the SMSC simulator is already running")
        loop = asyncio.get_running_loop()
        self._dispatcher = ReceiptDispatcher(self.config, self.stats, lambda: self.script, loop)
        self._server = await asyncio.start_server(self._serve, self.config.host, self.config.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Stop listening, hang up every connection and drop the receipts not yet delivered."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for session in list(self._sessions):
            session.close()
        if self._tasks:
            _, stuck = await asyncio.wait(set(self._tasks), timeout=STOP_TIMEOUT_SECONDS)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck, timeout=STOP_TIMEOUT_SECONDS)
        await server.wait_closed()
        self.dispatcher.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def send_mo(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        concat: Concatenation = "udh",
        delay: float = 0.0,
        pdus: Sequence[DeliverSm] | None = None,
    ) -> list[DeliverSm]:
        """Deliver a mobile-originated message from `source` (a handset) to `destination` (a
        number or short code) to the gateway's receiver binds, split into parts as a handset
        sends a long text (`concat`: UDH or sar_* TLVs), each resent until acknowledged as a
        receipt is. `pdus` sends those instead (a test's own parts, in its order). Returns them."""
        parts = (
            list(pdus)
            if pdus is not None
            else mo_pdus(source, destination, text, concat=concat, rng=self.rng)
        )
        for pdu in parts:
            self.stats.mobile_originated += 1
            self.dispatcher.add(pdu, self.config.system_id, delay)
        return parts

    def forget(self, session: SmscSession) -> None:
        """A session ended: no more receipts go to it."""
        self._sessions.discard(session)
        if self._dispatcher is not None:
            self._dispatcher.remove_receiver(session)

    def record_content(self, destination_addr: str, content: bytes) -> None:
        """Count an accepted submit by destination and content; a repeat is a duplicate."""
        counts = self.stats.submits_by_content
        key = (destination_addr, content)
        seen = counts.get(key, 0)
        if seen:
            self.stats.duplicates += 1
        elif len(counts) >= self.config.max_tracked_submissions:
            del counts[next(iter(counts))]  # forget the oldest key: memory stays bounded
        counts[key] = seen + 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        session = SmscSession(self, reader, writer)
        self.stats.connections += 1
        if task is not None:
            self._tasks.add(task)
        self._sessions.add(session)
        try:
            await session.run()
        except Exception:
            logger.exception("SMSC simulator: connection from %s failed", session.peer)
            session.close()
        finally:
            self._sessions.discard(session)
            if task is not None:
                self._tasks.discard(task)


async def serve_forever(config: SmscConfig, *, stats_interval_seconds: float = 60.0) -> None:
    """Run a simulator until cancelled, logging where it listens and a stats line every interval."""
    async with SmscSimulator(config) as smsc:
        logger.info(
            "SMSC simulator listening on %s:%d (system_id %r)", config.host, smsc.port, config.system_id
        )
        while True:
            await asyncio.sleep(stats_interval_seconds)
            logger.info("SMSC stats: %s pending_receipts=%d", smsc.stats.summary(), smsc.pending_receipts)
