"""Recording what users sent: providers hand `InboundMessage`s (and SMS parts) to the sink, which
stores them in the process's group commit (store/repositories/inbound.py) and returns once they
are committed, so a provider acknowledges only what is stored. An inbound message to a number no
company owns is logged and counted, never stored under a guess."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.inbound import InboundMessage, InboundPart, OptKeywords
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.errors import Unavailable
from partner_gateway.observability import metrics
from partner_gateway.store.batching import BulkOperation, WriteBatcher
from partner_gateway.store.outages import store_unavailable
from partner_gateway.store.repositories import inbound as store

logger = logging.getLogger(__name__)

Item = InboundMessage | InboundPart


def _operation(keywords: OptKeywords) -> BulkOperation[Sequence[Item], list[store.Stored]]:
    """One caller's items each, in the batch's transaction (in order: a part and its message)."""

    async def run(connection: AsyncConnection, lists: Sequence[Sequence[Item]]) -> list[list[store.Stored]]:
        now = now_ms()
        return [
            [await store.store_inbound(connection, item, keywords, now) for item in items] for items in lists
        ]

    return BulkOperation("inbound messages", run)


class InboundRecorder:
    def __init__(self, batcher: WriteBatcher, keywords: OptKeywords) -> None:
        self._batcher = batcher
        self._operation = _operation(keywords)
        self.stored = 0
        self.unassigned = 0

    async def receive(self, items: Sequence[Item]) -> list[store.Stored]:
        """Raises `Unavailable` when the store cannot take them now: the provider answers so that
        they are offered again (an SMPP temporary error, a webhook's 503)."""
        try:
            outcomes = await self._batcher.submit_bulk(self._operation, items)
        except Exception as error:
            if store_unavailable(error):
                raise Unavailable(
                    f"the store cannot record inbound messages now: {type(error).__name__}"
                ) from error
            raise
        for item, outcome in zip(items, outcomes, strict=True):
            metrics.inbound_recorded(item.channel.value, outcome.outcome, outcome.opt)
            if outcome.outcome == "unassigned":
                self.unassigned += 1
                logger.warning(
                    "inbound %s from %s to %s: no company owns %s on %s; not stored "
                    "(assign it with `partner-gateway company numbers add`)",
                    *(item.channel.value, item.sender, item.recipient, item.recipient, item.channel.value),
                )
            elif outcome.outcome == "stored":
                self.stored += 1
                logger.info(
                    "inbound %s %s stored for %s%s",
                    *(
                        item.channel.value,
                        outcome.inbound_id,
                        outcome.company_id,
                        f" ({outcome.opt})" if outcome.opt else "",
                    ),
                )
        return outcomes


STALE_PARTS_INTERVAL = 600.0  # seconds between two looks for parts whose siblings never came


class StaleInboundParts:
    """Drops the parts of concatenated SMS whose other parts have not come within a day
    (store.STALE_PARTS_MS): a carrier that lost one part never sends it."""

    def __init__(self, batcher: WriteBatcher) -> None:
        self._batcher = batcher
        self.dropped = 0

    async def run(self) -> None:
        from partner_gateway.dispatch.housekeeping import repeat

        await repeat(self.drop_once, STALE_PARTS_INTERVAL, "dropping stale inbound SMS parts failed")

    async def drop_once(self, now: int | None = None) -> int:
        at = now if now is not None else now_ms()

        async def drop(connection: AsyncConnection) -> int:
            return await store.drop_stale_parts(connection, at)

        dropped = int(await self._batcher.submit(drop))
        if dropped:
            self.dropped += dropped
            logger.warning("dropped %d parts of concatenated SMS whose other parts never came", dropped)
        return dropped
