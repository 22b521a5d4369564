"""What a process reads when it is scraped, and the page it answers with.

Most metrics are counted as things happen. A few are states best read when asked: the outbox's
depth, the parked receipts, a RabbitMQ queue's length. Each is a named source that sets its
gauges; a scrape runs them together, each bounded by `SOURCE_TIMEOUT_SECONDS`, so a scrape never
hangs on a store or a broker that does not answer: a failed source is counted in
`partner_gateway_scrape_errors_total{source}` and its gauges keep their last value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY, generate_latest

from partner_gateway.observability.metrics import SCRAPE_ERRORS

SOURCE_TIMEOUT_SECONDS = 1.0
CONTENT_TYPE = "text/plain; version=0.0.4"
"""The classic text format generate_latest writes, which every Prometheus reads (the framework
adds the charset)."""

Source = Callable[[], Awaitable[None]]
"""Reads a state and sets its gauges."""

logger = logging.getLogger(__name__)


class Scrape:
    def __init__(self) -> None:
        self._sources: dict[str, Source] = {}

    def add(self, name: str, source: Source) -> None:
        self._sources[name] = source

    @property
    def names(self) -> list[str]:
        return list(self._sources)

    async def refresh(self) -> None:
        await asyncio.gather(*(self._run(name, source) for name, source in self._sources.items()))

    async def page(self) -> bytes:
        """The Prometheus text page: the sources read, then every metric of the process."""
        await self.refresh()
        return generate_latest(REGISTRY)

    @staticmethod
    async def _run(name: str, source: Source) -> None:
        try:
            async with asyncio.timeout(SOURCE_TIMEOUT_SECONDS):
                await source()
        except Exception as error:  # TimeoutError included: the page is served without it
            SCRAPE_ERRORS.labels(name).inc()
            logger.warning("metrics source %s failed: %s", name, f"{type(error).__name__}: {error}"[:200])
