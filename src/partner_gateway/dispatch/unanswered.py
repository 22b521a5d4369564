"""A hand-over that got no answer: ended UNKNOWN rather than sent twice, and its receipt watched for.

Two ways lead here: the provider gave no answer (SendError "ambiguous"), or a worker stopped
between marking an item `written` and recording the answer, and recovery finds it (the one
window no protocol closes, see dispatch/worker.py). By default the message ends UNKNOWN, "may
have been sent, not resent"; with PARTNER_GATEWAY_RESEND_AMBIGUOUS=true it is resent instead, and
so is always a message of a provider whose resend cannot duplicate it (`resend_is_safe`: RBM,
whose messageId is the same for every attempt and which ignores a second one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.channels.base import Provider, SendError
from partner_gateway.dispatch.claim import Claim
from partner_gateway.dispatch.outcomes import Outcomes
from partner_gateway.dispatch.reports import apply_waiting
from partner_gateway.dispatch.retry_policy import Fail
from partner_gateway.domain.encoding import analyze
from partner_gateway.domain.reports import RECEIPT_TEXT_EXCERPT
from partner_gateway.domain.statuses import Channel, DeliveryStatus, unanswered_description
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.repositories import delivery


def given_up(channel: Channel) -> Fail:
    """The end of a hand-over that got no answer and is not resent: UNKNOWN, in the channel's terms."""
    return Fail(DeliveryStatus.UNKNOWN, unanswered_description(channel), None, "no-answer")


class Unanswered:
    def __init__(
        self,
        batcher: WriteBatcher,
        outcomes: Outcomes,
        providers: Mapping[Channel, Provider],
        *,
        resend: bool,
    ) -> None:
        self._batcher = batcher
        self._outcomes = outcomes
        self._providers = providers
        self._resend = resend

    async def settle(self, claim: Claim, reason: str, accepted: SendError | None = None) -> None:
        """Resend the message, or end it UNKNOWN (keeping the parts `accepted` names) and watch
        for a receipt that shows the carrier took it after all: in one transaction, so a receipt
        that comes once the message shows UNKNOWN is always recognised."""
        provider = self._providers.get(claim.item.channel)
        if self._resend or getattr(provider, "resend_is_safe", False):
            await self._outcomes.resend(claim.item, reason)
            return
        await self._outcomes.fail(
            claim.item, given_up(claim.item.channel), accepted, also=self._watch_for_receipt(claim, accepted)
        )

    def _watch_for_receipt(
        self, claim: Claim, error: SendError | None
    ) -> Callable[[AsyncConnection], Awaitable[None]] | None:
        """If the carrier did take an unanswered single-part SMS, its receipt will name the
        destination and the text's start: note them, so that receipt is recognised (and apply
        those that came already)."""
        item = claim.item
        provider = self._providers.get(item.channel)
        text = str(claim.message.content.get("text", ""))
        if provider is None or item.channel is not Channel.SMS or not text or analyze(text).segments != 1:
            return None
        excerpt = text[:RECEIPT_TEXT_EXCERPT].strip()
        # The receipt comes from the carrier that was written to: the error names it; after a
        # crash nothing does, and a routing provider names the message's likeliest carrier.
        carrier = error.provider if error is not None and error.provider else provider.name
        likeliest = getattr(provider, "carrier_for_receipts", None)
        if (error is None or not error.provider) and likeliest is not None:
            carrier = likeliest(claim.message)

        async def remember(connection: AsyncConnection) -> None:
            waiting = await delivery.remember_unconfirmed(
                connection, item.message_id, carrier, item.to.lstrip("+"), excerpt, now_ms()
            )
            await apply_waiting(connection, waiting)

        return remember
