"""Handing one claimed item to its provider, and carrying out what follows the provider's answer.

The crash guarantees are the dispatcher's (see dispatch/worker.py): the item is marked `written`
before the provider's first byte (`WriteGuard`), and leaves the outbox only in the transaction
that records its outcome. A failure is turned into a decision by `retry_policy.decide` (pure),
which this module executes.

An outcome, once known, is recorded even if the store is unavailable at that moment (PostgreSQL
restarting, the SQLite disk full): the write is tried again, less and less often, until it
commits, or until a stopping worker gives up waiting (the item is then what a crash would have
left). A hand-over cancelled by a stop before its first byte went out is handed back to the
outbox for any worker to take at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, assert_never

from partner_gateway.channels.base import Provider, SendError
from partner_gateway.dispatch.claim import Claim
from partner_gateway.dispatch.fallback import FallbackSms
from partner_gateway.dispatch.outcomes import RECORD_ACCEPTED, Outcomes, WriteGuard
from partner_gateway.dispatch.retry_policy import (
    EXPIRED_BEFORE_HANDOVER,
    JITTER,
    NO_PROVIDER,
    OPTED_OUT,
    Ambiguous,
    Fail,
    Fallback,
    Retry,
    RetryPolicy,
    decide,
    provider_failure,
)
from partner_gateway.dispatch.unanswered import Unanswered
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.observability import context, metrics
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.outages import store_unavailable
from partner_gateway.store.repositories.delivery import ClaimedItem

logger = logging.getLogger(__name__)

RECORD_RETRY_FIRST = 0.2  # seconds before the first new try of an outcome's write
RECORD_RETRY_MAX = 5.0  # and at most between two, however long the store is away
HAND_BACK_SECONDS = 2.0  # how long a stopping worker tries to hand an unwritten item back


class Handover:
    def __init__(
        self,
        batcher: WriteBatcher,
        providers: Mapping[Channel, Provider],
        policy: RetryPolicy,
        *,
        outcomes: Outcomes,
        unanswered: Unanswered,
        fallback: FallbackSms,
        held: set[int],
    ) -> None:
        self._batcher = batcher
        self._providers = providers
        self._policy = policy
        self._outcomes = outcomes
        self._unanswered = unanswered
        self._fallback = fallback
        self._held = held  # outbox ids being handed over: their leases are renewed
        self._unwritten: set[asyncio.Task[Any]] = set()  # hand-overs not yet writing to their provider
        self.delivered_to_provider = 0

    async def deliver(self, item: ClaimedItem) -> None:
        """Hand over an item this worker claimed; a failure of our own is logged, not raised."""
        try:
            await self.deliver_once(item)
        except Exception:
            # Our own failure (store unavailable, a bug): the claim's lease returns the item.
            logger.exception("delivering %s failed inside the gateway", item.message_id)

    async def deliver_once(self, item: ClaimedItem) -> None:
        """Hand over an item and record the outcome; raises on a failure of our own."""
        self._held.add(item.outbox_id)
        # Its log lines name the message and its company (observability/logs.py).
        token = context.enter(context.RequestContext(company_id=item.company_id, message_id=item.message_id))
        try:
            await self._hand_over(Claim.of(item))
        finally:
            context.leave(token)
            self._held.discard(item.outbox_id)

    async def _hand_over(self, claim: Claim) -> None:
        item = claim.item
        if now_ms() >= item.expires_at:
            await _recorded(item, lambda: self._outcomes.fail(item, EXPIRED_BEFORE_HANDOVER))
            metrics.handed_over(item.channel, "expired")
            return
        if item.opted_out:
            # The destination sent STOP (or is on the company's list): refused before any provider.
            await _recorded(item, lambda: self._outcomes.fail(item, OPTED_OUT))
            metrics.handed_over(item.channel, "opted_out")
            return
        provider = self._providers.get(item.channel)
        if provider is None:
            await _recorded(item, lambda: self._outcomes.fail(item, NO_PROVIDER))
            metrics.handed_over(item.channel, "no_provider")
            return
        task = asyncio.current_task()
        assert task is not None
        self._unwritten.add(task)
        guard = WriteGuard(self._batcher, item.outbox_id, on_writing=lambda: self._unwritten.discard(task))
        try:
            try:
                accepted = await provider.send(claim.message, guard)
            finally:  # from its answer on, a hand-over is recorded, never given back
                self._unwritten.discard(task)
        except SendError as error:
            refused = error  # the name `error` ends with the except block; the retries outlive it
            await _recorded(item, lambda: self._after_failure(claim, refused))
            return
        except asyncio.CancelledError:
            if not guard.written:
                await self._hand_back(item)
            raise
        except Exception as error:
            if not guard.written and store_unavailable(error):  # the `written` mark could not be stored
                logger.warning("store unavailable before handing over %s: %s", item.message_id, error)
            else:
                logger.exception("provider %s raised while sending %s", provider.name, item.message_id)
            failure = provider_failure(error, guard.written)
            await _recorded(item, lambda: self._after_failure(claim, failure))
            return
        await _recorded(item, lambda: self._batcher.submit_bulk(RECORD_ACCEPTED, (item, accepted)))
        self.delivered_to_provider += 1
        metrics.handed_over(item.channel, "accepted", (now_ms() - item.created_at) / 1000)

    def give_back_unwritten(self) -> int:
        """A draining worker hands back at once what it has not begun to write (waiting for a
        carrier's window or throughput): cancelled, each is due again for any worker. Returns how many."""
        waiting = list(self._unwritten)
        for task in waiting:
            task.cancel()
        return len(waiting)

    async def _hand_back(self, item: ClaimedItem) -> None:
        """Cancelled before the provider had a byte of it: due again at once, for any worker. If the
        store cannot take that now, the claim's lease returns the item later."""
        try:
            async with asyncio.timeout(HAND_BACK_SECONDS):
                await self._outcomes.hand_back(item)
        except Exception as error:
            logger.warning("could not hand %s back (%s); its lease returns it", item.message_id, error)

    async def _after_failure(self, claim: Claim, error: SendError) -> None:
        jitter = random.uniform(*JITTER)  # noqa: S311 - jitter, not security
        channel = claim.item.channel
        if error.kind == "throttled":
            metrics.provider_throttled(error.provider or self._provider_name(channel))
        match decide(claim, error, self._policy, now_ms(), jitter):
            case Retry(at):
                await self._outcomes.retry(claim.item, error, at)
                metrics.handed_over(channel, "throttled" if error.kind == "throttled" else "retry")
            case Fail() as fail:
                await self._outcomes.fail(claim.item, fail, accepted=error)
                metrics.handed_over(channel, "failed")
            case Ambiguous():
                await self._unanswered.settle(claim, error.description, accepted=error)
                metrics.handed_over(channel, "ambiguous")
            case Fallback():
                await self._fallback.send(claim, error)
                metrics.handed_over(channel, "fallback")
            case unknown:
                assert_never(unknown)

    def _provider_name(self, channel: Channel) -> str:
        provider = self._providers.get(channel)
        return provider.name if provider is not None else "none"


async def _recorded(item: ClaimedItem, write: Callable[[], Awaitable[object]]) -> None:
    """Run `write` (an outcome's transaction) until it commits: while the store is unavailable it is
    tried again, first after RECORD_RETRY_FIRST seconds, then twice as long each time up to
    RECORD_RETRY_MAX. Any other failure is raised."""
    delay = RECORD_RETRY_FIRST
    while True:
        try:
            await write()
            return
        except Exception as error:
            if not store_unavailable(error):
                raise
            logger.log(  # once per outcome: every in-flight hand-over waits alike
                logging.WARNING if delay == RECORD_RETRY_FIRST else logging.DEBUG,
                "recording the outcome of %s waits for the store (%s: %s); next try in %.1f s",
                *(item.message_id, type(error).__name__, str(error).splitlines()[0][:200], delay),
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECORD_RETRY_MAX)
