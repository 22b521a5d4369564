"""The dispatcher's chores on a timer: the expiry sweep, parked receipts, claim recovery and
lease renewal, each a small collaborator whose `run()` the dispatcher starts and cancels."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.dispatch.claim import Claim
from partner_gateway.dispatch.outcomes import record_no_receipt
from partner_gateway.dispatch.reports import apply_waiting
from partner_gateway.dispatch.unanswered import Unanswered
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.outages import log_failure
from partner_gateway.store.repositories import delivery

logger = logging.getLogger(__name__)

PAGE = 500  # rows one chore's transaction takes on at most
PARKED_RECEIPTS_INTERVAL = 2.0  # seconds; how late a receipt caught in a cross-process race can be
EVERYTHING = 2**62  # a cut-off past every lease: on start, the only worker takes back every claim


async def repeat(
    chore: Callable[[], Awaitable[object]], interval: float, failure: str, *, at_once: bool = False
) -> None:
    """Run `chore` every `interval` seconds (first `at_once`, or after one interval) until
    cancelled; a failure is logged, and the chore runs again at the next interval."""
    if not at_once:
        await asyncio.sleep(interval)
    while True:
        try:
            await chore()
        except Exception as error:
            log_failure(logger, error, failure)
        await asyncio.sleep(interval)


class ExpirySweep:
    """Gives up waiting for receipts of messages past validity plus grace: UNKNOWN."""

    def __init__(self, batcher: WriteBatcher, *, grace_seconds: int, interval: float) -> None:
        self._batcher = batcher
        self._grace_ms = grace_seconds * 1000
        self._interval = interval

    async def run(self) -> None:
        await repeat(
            self.sweep_once,
            self._interval,
            "expiry sweep failed; retrying at the next interval",
            at_once=True,
        )

    async def sweep_once(self, now: int | None = None) -> int:
        cutoff = (now if now is not None else now_ms()) - self._grace_ms

        async def sweep_page(connection: AsyncConnection) -> int:
            """One page found and given up on in one transaction, not one write each."""
            lapsed = await delivery.lapsed_without_receipt(connection, cutoff, PAGE)
            await record_no_receipt(connection, lapsed, now_ms())
            return len(lapsed)

        swept = 0
        while True:
            page = await self._batcher.submit(sweep_page)
            swept += page
            if page < PAGE:
                return swept


class ParkedReceipts:
    """Applies receipts that were parked while their submission's record was in flight in
    another process (see delivery.take_pending_with_parts): late, but never lost."""

    def __init__(self, batcher: WriteBatcher) -> None:
        self._batcher = batcher

    async def run(self) -> None:
        await repeat(self._apply_all, PARKED_RECEIPTS_INTERVAL, "applying parked receipts failed; retrying")

    async def _apply_all(self) -> None:
        while await self.apply_once() == PAGE:
            pass

    async def apply_once(self) -> int:
        """One page of parked receipts applied; how many."""

        async def apply(connection: AsyncConnection) -> int:
            waiting = await delivery.take_pending_with_parts(connection, PAGE)
            await apply_waiting(connection, waiting)
            return len(waiting)

        applied: int = await self._batcher.submit(apply)
        if applied:
            logger.info("applied %d receipts that had waited for their submission's record", applied)
        return applied


class ClaimRecovery:
    """Returns the items of workers that died (their leases ran out) to the queue; those a dead
    worker had already marked `written` are unanswered hand-overs."""

    def __init__(self, batcher: WriteBatcher, unanswered: Unanswered, *, lease_seconds: int) -> None:
        self._batcher = batcher
        self._unanswered = unanswered
        self._interval = max(1.0, lease_seconds / 4)

    async def run(self) -> None:
        await repeat(
            partial(self.recover, everything=False),
            self._interval,
            "recovering expired claims failed; retrying",
        )

    async def recover(self, *, everything: bool) -> None:
        """`everything`: this is the only worker on its store, so every claim is a dead one's."""
        cutoff = EVERYTHING if everything else now_ms()
        stale = await self._batcher.submit(lambda c: delivery.release_expired_claims(c, cutoff))
        for item in stale:
            logger.warning("message %s was being handed over when a worker stopped", item.message_id)
            await self._unanswered.settle(Claim.of(item), "worker stopped during the hand-over")


class LeaseRenewal:
    """Keeps the leases of items still being handed over (a slow carrier, a full window), so
    no other worker mistakes them for a dead worker's."""

    def __init__(self, batcher: WriteBatcher, *, lease_seconds: int) -> None:
        self._batcher = batcher
        self._lease_ms = lease_seconds * 1000
        self._interval = max(0.5, lease_seconds / 3)
        self.held: set[int] = set()  # outbox ids being handed over; the hand-over adds and removes them

    async def run(self) -> None:
        # Not repeat(): nothing to do while nothing is held, and a failure names how many leases.
        while True:
            await asyncio.sleep(self._interval)
            held = list(self.held)
            if not held:
                continue
            until = now_ms() + self._lease_ms
            try:
                await self._batcher.submit(partial(delivery.renew_leases, outbox_ids=held, until=until))
            except Exception as error:
                log_failure(logger, error, f"renewing {len(held)} leases failed; retrying")
