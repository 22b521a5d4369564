"""The broker path (a work queue, RabbitMQ): the outbox relay publishes due items, and queue
consumers claim what they receive and hand it over.

The store stays the source of truth: an item is published under a lease, and claimed in the
store again by the worker that receives it, so a queue message delivered twice (at least once,
see dispatch/queues) is handed over once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.channels.base import Provider
from partner_gateway.dispatch.handover import Handover
from partner_gateway.dispatch.queues.base import WorkItem, WorkQueue, WorkQueueUnavailable
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.store.batching import BulkOperation, WriteBatcher
from partner_gateway.store.outages import log_failure
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.delivery import ClaimedItem

logger = logging.getLogger(__name__)


async def _first(*waits: Awaitable[object]) -> int:
    """Which of `waits` completed first (its index); the others are cancelled."""
    futures = [asyncio.ensure_future(wait) for wait in waits]
    try:
        done, _ = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            future.cancel()
    return min(index for index, future in enumerate(futures) if future in done)


class OutboxRelay:
    """Publishes due items, confirmed by the broker, then leaves them to the workers. A publish
    that fails puts the items back; an item published but never taken (its message lost, or
    dead-lettered) is due again when its lease runs out."""

    def __init__(
        self,
        batcher: WriteBatcher,
        queue: WorkQueue,
        wake: asyncio.Event,
        *,
        batch: int,
        lease_seconds: int,
        poll_seconds: float,
        stop: asyncio.Event | None = None,
    ) -> None:
        self._batcher = batcher
        self._queue = queue
        self._wake = wake  # set when new work was accepted in this process: look now
        # Set (with `wake`) when the worker drains: the relay ends between two publishes, so
        # nothing it took is left half-published.
        self._stop = stop or asyncio.Event()
        self._limit = batch
        self._lease_ms = lease_seconds * 1000
        self._poll_seconds = poll_seconds

    async def run(self) -> None:
        lease_ms, limit = self._lease_ms, self._limit
        while not self._stop.is_set():
            self._wake.clear()
            try:
                taken = await self._batcher.submit(
                    lambda c: delivery.take_for_publishing(c, now_ms(), limit, lease_ms)
                )
            except Exception as error:
                log_failure(logger, error, "reading due outbox items failed; retrying")
                await asyncio.sleep(1)
                continue
            if taken:
                items = [
                    WorkItem(outbox_id, message_id, channel, attempts)
                    for outbox_id, message_id, channel, attempts in taken
                ]
                try:
                    await self._queue.publish(items)
                except Exception:
                    logger.exception("publishing %d items failed; they are due again", len(items))
                    ids = [item.outbox_id for item in items]
                    await self._batcher.submit(lambda c, ids=ids: delivery.unpublish(c, ids))  # type: ignore[misc]
                    await asyncio.sleep(1)
                    continue
            if len(taken) < limit:
                # asyncio.timeout, not wait_for: on 3.11 wait_for returns normally when the wait
                # ends as it is cancelled (stop sets the event, then cancels), and the relay went
                # on forever: a worker with a broker never stopped on SIGTERM.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_seconds):
                        await self._wake.wait()


class QueueConsumer:
    """Takes a channel's items from the queue and hands each over, acknowledged once its
    outcome is committed."""

    def __init__(
        self,
        batcher: WriteBatcher,
        handover: Handover,
        *,
        lease_seconds: int,
        stop: asyncio.Event | None = None,
    ) -> None:
        self._batcher = batcher
        self._handover = handover
        self._lease_ms = lease_seconds * 1000
        self._claim_published = BulkOperation("claim published", self._take_published)
        # Set when the worker drains: consumers cancel at the broker, running handlers finish.
        self._stop = stop or asyncio.Event()

    async def consume_while_accepting(
        self, queue: WorkQueue, channel: Channel, provider: Provider, prefetch: int
    ) -> None:
        """Take the channel's work only while this worker can hand it over (it holds one of the
        carrier's binds, say): a worker without one would only hand every message back. Ends,
        its running deliveries finished, once the worker drains."""
        while not self._stop.is_set():
            if await _first(provider.wait_accepting(True), self._stop.wait()) == 1:
                return

            async def paused_or_stopping() -> None:
                await _first(provider.wait_accepting(False), self._stop.wait())

            until = asyncio.ensure_future(paused_or_stopping())
            try:
                await queue.consume(channel.value, self.handle, prefetch=prefetch, until=until)
            except WorkQueueUnavailable as error:  # not connected yet: the broker is down or restarting
                logger.warning("consuming %s waits for the broker: %s", channel.value, error)
                await _first(asyncio.sleep(1), self._stop.wait())
            finally:
                until.cancel()

    async def handle(self, work: WorkItem) -> None:
        """One item from the queue: take it in the store (another worker may have it already, if
        the queue delivered it twice), hand it over, record the outcome; the queue message is
        acknowledged after this returns, so after the outcome is committed."""
        item = await self._batcher.submit_bulk(self._claim_published, work.outbox_id)
        if item is None:
            return
        await self._handover.deliver_once(item)

    async def _take_published(
        self, connection: AsyncConnection, outbox_ids: Sequence[int]
    ) -> list[ClaimedItem | None]:
        """The items of queue messages received together, claimed with one statement. An id twice
        in one batch (the queue delivered it twice) is handed to its first receiver only."""
        claimed = await delivery.claim_published(connection, outbox_ids, now_ms(), self._lease_ms)
        return [claimed.pop(outbox_id, None) for outbox_id in outbox_ids]
