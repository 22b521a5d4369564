"""An RCS message its destination cannot receive, sent as the message's fallback SMS instead.

The SMS is a message of its own (accepted like any other, then dispatched, with the partner's
reference), linked both ways in the timelines and in the status answers (`fallbackFor` on the
SMS, `fallbackSms` on the RCS message); the RCS message's status then follows the SMS's ("Sent as SMS msg_…: Delivered to
the handset").
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.channels.base import SendError
from partner_gateway.dispatch.claim import Claim
from partner_gateway.domain.encoding import analyze
from partner_gateway.domain.ids import new_message_id
from partner_gateway.domain.messages import NewMessage
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.messages import MessageRepository


class FallbackSms:
    def __init__(self, batcher: WriteBatcher, wake: Callable[[], None]) -> None:
        self._batcher = batcher
        self._wake = wake  # the new SMS is due now: the dispatcher looks at once

    async def send(self, claim: Claim, error: SendError) -> None:
        """Accept the claim's fallbackSms as a new SMS, note both messages, finish the RCS item."""
        item, content = claim.item, claim.message.content
        fallback = content["fallbackSms"]
        text = str(fallback["text"])
        analysis = analyze(text)

        async def fallback_sms(connection: AsyncConnection) -> None:
            now = now_ms()
            sms_id = new_message_id(now)
            body = {"to": item.to, "text": text, "from": fallback.get("from"), "fallbackFor": item.message_id}
            await MessageRepository(connection).add_accepted(
                NewMessage(
                    id=sms_id,
                    company_id=item.company_id,
                    channel=Channel.SMS,
                    to=item.to,
                    sender=fallback.get("from"),
                    reference=content.get("reference"),
                    created_at=now,
                    expires_at=item.expires_at,
                    callback_url=content.get("callbackUrl"),
                    body=json.dumps(body),
                    encoding=analysis.encoding.value,
                    segments=analysis.segments,
                    fallback_for=item.message_id,
                )
            )
            await MessageRepository(connection).link_fallback_sms(item.message_id, sms_id)
            await delivery.add_note(
                connection, sms_id, "FALLBACK_FOR",
                f"Sent in place of RCS message {item.message_id}: {error.description}",
                "gateway:fallback-for", now,
            )  # fmt: skip
            await delivery.add_note(
                connection, item.message_id, "FALLBACK_SMS",
                f"{error.description} ({error.code}); sent as SMS {sms_id} instead",
                "gateway:fallback-sms", now,
            )  # fmt: skip
            await delivery.finish(connection, [item.outbox_id])

        await self._batcher.submit(fallback_sms)
        self._wake()
