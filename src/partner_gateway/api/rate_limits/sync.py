"""The limiter's background work: the companies' own limits, and the consumption processes share.

Every `refresh_seconds` (2 s by default) the process re-reads `company_rate_limits`, so a change
made with `partner-gateway company limits` applies within that time in every API process, with no
restart. When limits are shared (PostgreSQL by default), every `sync_seconds` (0.5 s) it writes
the running counts of its buckets that moved (one statement), reads the counts the other processes
wrote since its last look (one statement), and debits its buckets by their growth
(domain/rate_limits.py). Once a minute it forgets its idle buckets (and their rows) and removes
rows no process has written for ten minutes (processes that died). A failed round is logged and
retried next period; requests never wait on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from partner_gateway.api.rate_limits.limiter import RateLimiter
from partner_gateway.channels.smpp.bind_slots import new_holder_id
from partner_gateway.config import Settings
from partner_gateway.domain.rate_limits import RemoteUsage, Traffic
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.database import Database
from partner_gateway.store.outages import log_failure
from partner_gateway.store.repositories import rate_limits as store

logger = logging.getLogger(__name__)

LOOK_BACK_MS = 5_000
"""A read reaches this much further back than the previous one: a row committed late, or written
by a process whose clock is a little behind, is still seen (a count read twice is applied once)."""
FIRST_LOOK_BACK_MS = 120_000
HOUSEKEEPING_SECONDS = 60.0
DEAD_PROCESS_MS = 600_000


class RateLimitSync:
    """Keeps one process's limiter in step with the store."""

    def __init__(
        self,
        limiter: RateLimiter,
        database: Database,
        *,
        shared: bool,
        refresh_seconds: float = 2.0,
        sync_seconds: float = 0.5,
        process_id: str | None = None,
    ) -> None:
        self.limiter = limiter
        self.database = database
        self.shared = shared
        self.refresh_seconds = refresh_seconds
        self.sync_seconds = sync_seconds
        self.process_id = process_id or new_holder_id()
        self.remote = RemoteUsage()
        self._published: dict[tuple[str, Traffic], int] = {}
        self._read_since: int | None = None
        self._refreshed_at = float("-inf")
        self._housekept_at = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """One round now (the companies' limits apply from the first request), then the loop."""
        if not self.limiter.enabled:
            return
        await self.round()
        self._task = asyncio.create_task(self._loop(), name="rate-limit-sync")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self.shared:
            with contextlib.suppress(Exception):  # the rows expire anyway (DEAD_PROCESS_MS)
                async with self.database.write() as connection:
                    await store.release(connection, self.process_id)

    async def _loop(self) -> None:
        period = min(self.sync_seconds, self.refresh_seconds) if self.shared else self.refresh_seconds
        while True:
            await asyncio.sleep(period)
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the store may be away for a while; the buckets go on locally
                # One line a round while the store is away (a traceback each half second hid the
                # outage's other lines); the traceback for anything else.
                log_failure(logger, error, "rate limits: could not sync with the store")

    async def round(self) -> None:
        """Whatever is due: the companies' limits, the shared counts, housekeeping."""
        now = time.monotonic()
        if now - self._refreshed_at >= self.refresh_seconds:
            async with self.database.read() as connection:
                overrides = await store.all_overrides(connection)
            self.limiter.set_overrides(overrides)
            self._refreshed_at = now
        if self.shared:
            await self.share()
        if now - self._housekept_at >= HOUSEKEEPING_SECONDS:
            await self.housekeeping()
            self._housekept_at = now

    async def share(self) -> None:
        """Publish the counts that moved; debit what the others admitted since the last look."""
        moved = [
            (company_id, traffic, count)
            for (company_id, traffic), count in self.limiter.counts().items()
            if self._published.get((company_id, traffic)) != count
        ]
        wall = now_ms()
        since = wall - FIRST_LOOK_BACK_MS if self._read_since is None else self._read_since - LOOK_BACK_MS
        async with self.database.write() as connection:
            await store.publish(connection, self.process_id, moved, wall)
            counts = await store.others_since(connection, self.process_id, since)
        for company_id, traffic, count in moved:
            self._published[(company_id, traffic)] = count
        self._read_since = wall
        owed = self.remote.deltas(counts, time.monotonic())
        if owed:
            self.limiter.debit(owed)

    async def housekeeping(self) -> None:
        idle = self.limiter.forget_idle()
        for key in idle:
            self._published.pop(key, None)
        if not self.shared:
            return
        async with self.database.write() as connection:
            await store.forget(connection, self.process_id, idle)
            removed = await store.sweep(connection, now_ms() - DEAD_PROCESS_MS)
        if removed:
            logger.info("rate limits: removed %d counts of processes gone for 10 minutes", removed)


def rate_limit_sync(settings: Settings, runtime: Runtime) -> RateLimitSync:
    """The sync an API process runs for its runtime's limiter, as `settings` ask (shared by
    default on PostgreSQL, not on SQLite: one process, nothing to share)."""
    shared = settings.rate_limit_shared
    if shared is None:
        shared = runtime.database.dialect == "postgresql"
    return RateLimitSync(
        runtime.rate_limits,
        runtime.database,
        shared=shared,
        refresh_seconds=settings.rate_limit_refresh_seconds,
        sync_seconds=settings.rate_limit_sync_seconds,
    )
