"""Handing one claimed item to its provider, and carrying out what follows the provider's answer.

The crash guarantees are the dispatcher's (see dispatch/worker.py): the item is marked `written`
before the provider's first byte (`WriteGuard`), and leaves the outbox only in the transaction
that records its outcome. A failure is turned into a decision by `retry_policy.decide` (pure),
which this module executes.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import assert_never

from partner_gateway.channels.base import Provider, SendError
from partner_gateway.dispatch.claim import Claim
from partner_gateway.dispatch.fallback import FallbackSms
from partner_gateway.dispatch.outcomes import RECORD_ACCEPTED, Outcomes, WriteGuard
from partner_gateway.dispatch.retry_policy import (
    EXPIRED_BEFORE_HANDOVER,
    JITTER,
    NO_PROVIDER,
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
from partner_gateway.store.repositories.delivery import ClaimedItem

logger = logging.getLogger(__name__)


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
            await self._outcomes.fail(item, EXPIRED_BEFORE_HANDOVER)
            metrics.handed_over(item.channel, "expired")
            return
        provider = self._providers.get(item.channel)
        if provider is None:
            await self._outcomes.fail(item, NO_PROVIDER)
            metrics.handed_over(item.channel, "no_provider")
            return
        guard = WriteGuard(self._batcher, item.outbox_id)
        try:
            accepted = await provider.send(claim.message, guard)
        except SendError as error:
            await self._after_failure(claim, error)
            return
        except Exception as error:
            logger.exception("provider %s raised while sending %s", provider.name, item.message_id)
            await self._after_failure(claim, provider_failure(error, guard.written))
            return
        await self._batcher.submit_bulk(RECORD_ACCEPTED, (item, accepted))
        self.delivered_to_provider += 1
        metrics.handed_over(item.channel, "accepted", (now_ms() - item.created_at) / 1000)

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
