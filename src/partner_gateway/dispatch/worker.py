"""The dispatcher: takes due outbox items, hands each to its channel's provider, records the result.

Nothing accepted is lost: an item leaves the outbox only in the transaction that records its
outcome. Nothing is sent twice by a retry: an item is retried only when the provider said that
nothing was accepted (SendError "retry"/"throttled"), and resumes after the parts already
accepted.

The one window no protocol closes: the process dies after writing a message to the provider and
before recording the answer. Before its first byte goes out, each item is durably marked
`written` (group-committed, see HandoverGuard); after a restart, an item still `written` is
ambiguous and is treated like a hand-over that got no answer: by default it ends UNKNOWN, "may
have been sent, not resent to avoid a duplicate" (PARTNER_GATEWAY_RESEND_AMBIGUOUS=true resends
instead). Items claimed but never marked `written` are simply sent.

The `Dispatcher` runs the claim loop (or, with a work queue, the relay and the consumers) and
starts and stops its collaborators, each in a module of its own:

    handover.Handover            one item to its provider; what follows its answer
    retry_policy.decide          what follows a failure (pure: retry, fail, ambiguous, fallback)
    outcomes                     what is written to the store for a hand-over
    unanswered.Unanswered        a hand-over that got no answer: UNKNOWN, its receipt watched for
    fallback.FallbackSms         an unreachable RCS message sent as its fallback SMS
    housekeeping                 expiry sweep, parked receipts, claim recovery, lease renewal
    unmatched                    parked reports nothing claims: reported with their cause, dropped after an hour
    relay                        the outbox relay and the queue consumers (scale-out mode)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from partner_gateway.channels.base import Provider
from partner_gateway.config import Settings
from partner_gateway.dispatch.fallback import FallbackSms
from partner_gateway.dispatch.handover import Handover
from partner_gateway.dispatch.housekeeping import ClaimRecovery, ExpirySweep, LeaseRenewal, ParkedReceipts
from partner_gateway.dispatch.inbound import StaleInboundParts
from partner_gateway.dispatch.outcomes import Outcomes
from partner_gateway.dispatch.queues.base import WorkQueue
from partner_gateway.dispatch.relay import OutboxRelay, QueueConsumer
from partner_gateway.dispatch.retry_policy import RetryPolicy
from partner_gateway.dispatch.unanswered import Unanswered
from partner_gateway.dispatch.unmatched import UnmatchedReports
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.observability import metrics
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.outages import log_failure, store_unavailable
from partner_gateway.store.repositories import delivery

logger = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        batcher: WriteBatcher,
        providers: Mapping[Channel, Provider],
        *,
        exclusive: bool = True,
        queue: WorkQueue | None = None,
    ) -> None:
        self._settings = settings
        self._batcher = batcher
        self._providers = dict(providers)
        self._exclusive = exclusive  # the only worker on this store: every claim found is a dead one's
        # With a queue (RabbitMQ), a relay publishes due items and workers anywhere consume them;
        # without one, this worker claims due items from the store itself.
        self._queue = queue
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._claimed: set[int] = set()  # outbox ids of the items the claim loop is handing over
        # Set when a claim's worth of hand-overs has finished: the claim loop waits for room for a
        # whole claim, not for each hand-over (one-item claims, each waiting on every task).
        self._room = asyncio.Event()
        self._claim_size = min(settings.dispatch_batch, settings.dispatch_max_in_flight)
        self._intake: list[asyncio.Task[None]] = []  # what takes new work: claims, relay, consumers
        self._chores: list[asyncio.Task[None]] = []  # housekeeping, stopped once hand-overs are done
        self._stopping = False
        self._stop = asyncio.Event()  # the relay and the consumers end when it is set

        lease_seconds = settings.dispatch_lease_seconds
        policy = RetryPolicy.of(settings)
        outcomes = Outcomes(batcher)
        unanswered = Unanswered(batcher, outcomes, self._providers, resend=policy.resend_ambiguous)
        self._renewal = LeaseRenewal(batcher, lease_seconds=lease_seconds)
        self._handover = Handover(
            batcher,
            self._providers,
            policy,
            outcomes=outcomes,
            unanswered=unanswered,
            fallback=FallbackSms(batcher, self.wake),
            held=self._renewal.held,
        )
        self._recovery = ClaimRecovery(batcher, unanswered, lease_seconds=lease_seconds)
        self._sweep = ExpirySweep(
            batcher, grace_seconds=settings.receipt_grace_seconds, interval=settings.sweep_interval_seconds
        )
        self._parked = ParkedReceipts(batcher)
        self._unmatched = UnmatchedReports(batcher)
        self._stale_parts = StaleInboundParts(batcher)
        self.consumer = QueueConsumer(batcher, self._handover, lease_seconds=lease_seconds, stop=self._stop)
        metrics.LIVE.track_dispatcher(self)

    @property
    def in_flight(self) -> int:
        """Hand-overs running now, claimed or from the queue (partner_gateway_dispatch_in_flight)."""
        return len(self._renewal.held)

    @property
    def delivered_to_provider(self) -> int:
        """Hand-overs the providers accepted, since this dispatcher was made."""
        return self._handover.delivered_to_provider

    def wake(self) -> None:
        """New work was accepted (in this process): look now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        await self._recovery.recover(everything=self._exclusive)
        self._chores = [
            asyncio.create_task(self._sweep.run(), name="dispatch-expiry"),
            asyncio.create_task(self._renewal.run(), name="dispatch-lease-renewal"),
            asyncio.create_task(self._parked.run(), name="dispatch-parked-receipts"),
            asyncio.create_task(self._unmatched.run(), name="dispatch-unmatched-reports"),
            asyncio.create_task(self._stale_parts.run(), name="dispatch-stale-inbound-parts"),
        ]
        if self._queue is None:
            self._intake.append(asyncio.create_task(self._claim_loop(), name="dispatch-claims"))
        else:
            settings = self._settings
            relay = OutboxRelay(
                self._batcher,
                self._queue,
                self._wake,
                batch=settings.dispatch_batch,
                lease_seconds=settings.dispatch_lease_seconds,
                poll_seconds=settings.dispatch_poll_seconds,
                stop=self._stop,
            )
            self._intake.append(asyncio.create_task(relay.run(), name="dispatch-relay"))
            prefetch = max(1, settings.dispatch_max_in_flight // max(1, len(self._providers)))
            for channel, provider in self._providers.items():
                self._intake.append(
                    asyncio.create_task(
                        self.consumer.consume_while_accepting(self._queue, channel, provider, prefetch),
                        name=f"dispatch-consume-{channel.value}",
                    )
                )
        if not self._exclusive:
            self._chores.append(asyncio.create_task(self._recovery.run(), name="dispatch-recovery"))

    async def stop(self, grace_seconds: float = 10.0, hurry: asyncio.Event | None = None) -> None:
        """Drain: take no new work (the claim loop and the relay end between two rounds, queue
        consumers cancel at the broker), give back the hand-overs not yet writing to their
        provider (due again at once, for any worker), let those being written finish and record
        their outcomes for up to `grace_seconds`, or until `hurry` is set; then cancel what is
        left (one written is what a crash leaves: see the module doc). The chores, lease renewal
        among them, stop last."""
        self._stopping = True
        self._stop.set()
        self._wake.set()
        self._room.set()
        deadline = asyncio.get_running_loop().time() + grace_seconds
        # Waiting for a carrier's window or throughput, a hand-over would hold the drain for
        # nothing: given back, any worker takes it at once. Those being written finish. (Again
        # once the intake has ended: a round under way may have started more.)
        given_back = self._handover.give_back_unwritten()
        await _finish(self._intake, deadline, hurry)
        given_back += self._handover.give_back_unwritten()
        if given_back:
            logger.info("stopping: %d hand-overs not yet written are given back to the outbox", given_back)
        await _finish(list(self._in_flight), deadline, hurry)
        left = [*self._intake, *self._in_flight]
        if any(not task.done() for task in left):
            logger.warning(
                "stopping: %d hand-overs still running are cancelled", sum(not t.done() for t in left)
            )
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        for task in self._chores:
            task.cancel()
        await asyncio.gather(*self._chores, return_exceptions=True)

    async def drain(self, within_seconds: float) -> bool:
        """Wait until nothing is in flight (for tests and benchmarks)."""
        deadline = asyncio.get_running_loop().time() + within_seconds
        while asyncio.get_running_loop().time() < deadline:
            if not self._in_flight:
                return True
            await asyncio.sleep(0.05)
        return False

    async def sweep_once(self, now: int | None = None) -> int:
        """Give up waiting for receipts of messages past validity plus grace: UNKNOWN."""
        return await self._sweep.sweep_once(now)

    async def apply_parked_receipts(self) -> int:
        """Apply one page of receipts parked in a cross-process race (see housekeeping)."""
        return await self._parked.apply_once()

    async def _claim_loop(self) -> None:
        lease_ms = self._settings.dispatch_lease_seconds * 1000
        uncertain = False  # whether the last claim failed in a way that may have committed it
        while not self._stopping:
            # Only channels this worker can hand over now (see QueueConsumer.consume_while_accepting).
            channels = [channel for channel, provider in self._providers.items() if provider.accepting]
            capacity = self._settings.dispatch_max_in_flight - len(self._in_flight)
            if capacity < self._claim_size:
                self._room.clear()
                await self._room.wait()
                continue
            self._wake.clear()
            limit = min(self._settings.dispatch_batch, capacity)
            try:
                if uncertain:
                    await self._release_unheld()
                    uncertain = False
                items = await self._batcher.submit(
                    lambda c, limit=limit, channels=channels: delivery.claim_due(
                        c, now_ms(), limit, lease_ms, channels
                    )  # type: ignore[misc]
                )
            except Exception as error:
                # The store may have committed the claim as the connection was lost: its items
                # would stay claimed by no one until their lease ran out.
                uncertain = self._exclusive and store_unavailable(error)
                log_failure(logger, error, "claiming outbox items failed; retrying")
                await asyncio.sleep(1)
                continue
            for item in items:
                task = asyncio.create_task(self._handover.deliver(item), name=f"deliver-{item.message_id}")
                self._in_flight.add(task)
                self._claimed.add(item.outbox_id)
                task.add_done_callback(partial(self._handed_over, item.outbox_id))
            if len(items) < limit:
                with contextlib.suppress(TimeoutError):  # asyncio.timeout: see relay.py
                    async with asyncio.timeout(self._settings.dispatch_poll_seconds):
                        await self._wake.wait()

    async def _release_unheld(self) -> None:
        """This worker is the only one on its store: a claimed item it is not handing over is one
        whose claim it never heard of. Due again."""
        released = await self._batcher.submit(lambda c: delivery.release_unheld(c, list(self._claimed)))
        if released:
            logger.warning("%d items claimed as the store's connection was lost are due again", released)

    def _handed_over(self, outbox_id: int, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._claimed.discard(outbox_id)
        if self._settings.dispatch_max_in_flight - len(self._in_flight) >= self._claim_size:
            self._room.set()


async def _finish(tasks: list[asyncio.Task[None]], deadline: float, hurry: asyncio.Event | None) -> None:
    """Wait until every one of `tasks` is done, the loop's clock passes `deadline`, or `hurry` is set."""
    pending: set[asyncio.Future[Any]] = {task for task in tasks if not task.done()}
    if not pending:
        return
    hurried = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
    loop = asyncio.get_running_loop()
    try:
        while pending and loop.time() < deadline:
            waiting = pending if hurried is None else {*pending, hurried}
            done, _ = await asyncio.wait(
                waiting, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            if hurried is not None and hurried in done:
                return
            pending -= done
    finally:
        if hurried is not None:
            hurried.cancel()
