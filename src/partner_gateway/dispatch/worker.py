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

from partner_gateway.channels.base import Provider
from partner_gateway.config import Settings
from partner_gateway.dispatch.fallback import FallbackSms
from partner_gateway.dispatch.handover import Handover
from partner_gateway.dispatch.housekeeping import ClaimRecovery, ExpirySweep, LeaseRenewal, ParkedReceipts
from partner_gateway.dispatch.outcomes import Outcomes
from partner_gateway.dispatch.queues.base import WorkQueue
from partner_gateway.dispatch.relay import OutboxRelay, QueueConsumer
from partner_gateway.dispatch.retry_policy import RetryPolicy
from partner_gateway.dispatch.unanswered import Unanswered
from partner_gateway.dispatch.unmatched import UnmatchedReports
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.store.batching import WriteBatcher
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
        # Set when a claim's worth of hand-overs has finished: the claim loop waits for room for a
        # whole claim, not for each hand-over (one-item claims, each waiting on every task).
        self._room = asyncio.Event()
        self._claim_size = min(settings.dispatch_batch, settings.dispatch_max_in_flight)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

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
        self.consumer = QueueConsumer(batcher, self._handover, lease_seconds=lease_seconds)

    @property
    def delivered_to_provider(self) -> int:
        """Hand-overs the providers accepted, since this dispatcher was made."""
        return self._handover.delivered_to_provider

    def wake(self) -> None:
        """New work was accepted (in this process): look now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        await self._recovery.recover(everything=self._exclusive)
        self._tasks = [
            asyncio.create_task(self._sweep.run(), name="dispatch-expiry"),
            asyncio.create_task(self._renewal.run(), name="dispatch-lease-renewal"),
            asyncio.create_task(self._parked.run(), name="dispatch-parked-receipts"),
            asyncio.create_task(self._unmatched.run(), name="dispatch-unmatched-reports"),
        ]
        if self._queue is None:
            self._tasks.append(asyncio.create_task(self._claim_loop(), name="dispatch-claims"))
        else:
            settings = self._settings
            relay = OutboxRelay(
                self._batcher,
                self._queue,
                self._wake,
                batch=settings.dispatch_batch,
                lease_seconds=settings.dispatch_lease_seconds,
                poll_seconds=settings.dispatch_poll_seconds,
            )
            self._tasks.append(asyncio.create_task(relay.run(), name="dispatch-relay"))
            prefetch = max(1, settings.dispatch_max_in_flight // max(1, len(self._providers)))
            for channel, provider in self._providers.items():
                self._tasks.append(
                    asyncio.create_task(
                        self.consumer.consume_while_accepting(self._queue, channel, provider, prefetch),
                        name=f"dispatch-consume-{channel.value}",
                    )
                )
        if not self._exclusive:
            self._tasks.append(asyncio.create_task(self._recovery.run(), name="dispatch-recovery"))

    async def stop(self, grace_seconds: float = 10.0) -> None:
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._in_flight:
            _done, pending = await asyncio.wait(self._in_flight, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

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
                items = await self._batcher.submit(
                    lambda c, limit=limit, channels=channels: delivery.claim_due(
                        c, now_ms(), limit, lease_ms, channels
                    )  # type: ignore[misc]
                )
            except Exception:
                logger.exception("claiming outbox items failed; retrying")
                await asyncio.sleep(1)
                continue
            for item in items:
                task = asyncio.create_task(self._handover.deliver(item), name=f"deliver-{item.message_id}")
                self._in_flight.add(task)
                task.add_done_callback(self._handed_over)
            if len(items) < limit:
                with contextlib.suppress(TimeoutError):  # asyncio.timeout: see relay.py
                    async with asyncio.timeout(self._settings.dispatch_poll_seconds):
                        await self._wake.wait()

    def _handed_over(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._settings.dispatch_max_in_flight - len(self._in_flight) >= self._claim_size:
            self._room.set()
