"""An RCS message its destination cannot receive, sent as the message's fallback SMS instead.

Two cues, both the channel giving up on the destination:

- at the hand-over, RBM answers 404 (not RCS-capable): `FallbackSms.send`;
- later, RBM revokes the message at its time to live (`TTL_EXPIRATION_REVOKED`) and the send
  asked for that with `fallbackSms.afterSeconds` (the RCS message then went out with that ttl):
  `fall_back_on_revocations`, in the transaction that records the report. The report stays in
  the RCS message's timeline but does not expire it.

The SMS is a message of its own (accepted like any other, then dispatched, with the partner's
reference and callbackUrl, and the RCS message's remaining validity), linked both ways in the
timelines and in the status answers (`fallbackFor` on the SMS, `fallbackSms` on the RCS message);
the RCS message's status then follows the SMS's ("Sent as SMS msg_…: Delivered to the handset").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.channels.base import SendError
from partner_gateway.dispatch.claim import Claim
from partner_gateway.domain.encoding import analyze
from partner_gateway.domain.ids import new_message_id
from partner_gateway.domain.messages import NewMessage
from partner_gateway.domain.reports import StatusReport
from partner_gateway.domain.statuses import FINAL_STATUSES, Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.messages import MessageRepository

_FINAL = {status.value for status in FINAL_STATUSES}


class FallbackSms:
    def __init__(self, batcher: WriteBatcher, wake: Callable[[], None]) -> None:
        self._batcher = batcher
        self._wake = wake  # the new SMS is due now: the dispatcher looks at once

    async def send(self, claim: Claim, error: SendError) -> None:
        """Accept the claim's fallbackSms as a new SMS, note both messages, finish the RCS item."""
        item, content = claim.item, claim.message.content

        async def fallback_sms(connection: AsyncConnection) -> None:
            await accept_fallback_sms(
                connection,
                rcs_id=item.message_id,
                company_id=item.company_id,
                to=item.to,
                content=content,
                expires_at=item.expires_at,
                reason=f"{error.description} ({error.code})",
                now=now_ms(),
            )
            await delivery.finish(connection, [item.outbox_id])

        await self._batcher.submit(fallback_sms)
        self._wake()


async def accept_fallback_sms(
    connection: AsyncConnection,
    *,
    rcs_id: str,
    company_id: str,
    to: str,
    content: Mapping[str, Any],
    expires_at: int,
    reason: str,
    now: int,
) -> str:
    """Store the RCS message's fallbackSms as an accepted SMS linked to it both ways, with a
    note in both timelines; the SMS's id. Inside the caller's transaction."""
    fallback = content["fallbackSms"]
    text = str(fallback["text"])
    analysis = analyze(text)
    sms_id = new_message_id(now)
    body = {"to": to, "text": text, "from": fallback.get("from"), "fallbackFor": rcs_id}
    repository = MessageRepository(connection)
    await repository.add_accepted(
        NewMessage(
            id=sms_id,
            company_id=company_id,
            channel=Channel.SMS,
            to=to,
            sender=fallback.get("from"),
            reference=content.get("reference"),
            created_at=now,
            expires_at=expires_at,
            callback_url=content.get("callbackUrl"),
            body=json.dumps(body),
            encoding=analysis.encoding.value,
            segments=analysis.segments,
            fallback_for=rcs_id,
        )
    )
    await repository.link_fallback_sms(rcs_id, sms_id)
    await delivery.add_note(
        connection, sms_id, "FALLBACK_FOR", f"Sent in place of RCS message {rcs_id}: {reason}",
        "gateway:fallback-for", now,
    )  # fmt: skip
    await delivery.add_note(
        connection, rcs_id, "FALLBACK_SMS", f"{reason}; sent as SMS {sms_id} instead",
        "gateway:fallback-sms", now,
    )  # fmt: skip
    return sms_id


async def fall_back_on_revocations(
    connection: AsyncConnection, reports: Sequence[StatusReport], now: int
) -> list[StatusReport]:
    """The reports to apply: each one in which the channel gave up on a message that asked for a
    fallback on that (`fallbackSms.afterSeconds`), still has validity left and no fallback yet,
    sends its fallback SMS and is kept for the timeline without its status; so is a give-up on a
    message that has its fallback SMS already. The rest as given."""
    keys: dict[str, set[str]] = {}
    for report in reports:
        if report.channel_unavailable and report.provider_key is not None and report.status is not None:
            keys.setdefault(report.provider, set()).add(report.provider_key)
    if not keys:
        return list(reports)
    repository = MessageRepository(connection)
    candidates = {
        (provider, key): candidate
        for provider, provider_keys in keys.items()
        for key, candidate in (await repository.fallback_candidates(provider, sorted(provider_keys))).items()
    }
    fallen_back: dict[str, str] = {}  # RCS message id -> its SMS, in this batch
    applied = []
    for report in reports:
        candidate = candidates.get((report.provider, report.provider_key or ""))
        if not report.channel_unavailable or candidate is None:
            applied.append(report)
            continue
        # A message whose SMS took over follows the SMS: a later give-up changes nothing either.
        sms_id = fallen_back.get(candidate.message_id) or candidate.fallback_sms
        if sms_id is None:
            content = json.loads(candidate.body)
            asked = isinstance((content.get("fallbackSms") or {}).get("afterSeconds"), int)
            if not asked or candidate.status in _FINAL or candidate.expires_at <= now:
                applied.append(report)
                continue
            sms_id = await accept_fallback_sms(
                connection,
                rcs_id=candidate.message_id,
                company_id=candidate.company_id,
                to=candidate.to,
                content=content,
                expires_at=candidate.expires_at,
                reason=f"{report.description} ({report.error_code or report.raw_state})",
                now=now,
            )
            fallen_back[candidate.message_id] = sms_id
        applied.append(_timeline_only(report, sms_id))
    return applied


def _timeline_only(report: StatusReport, sms_id: str) -> StatusReport:
    """The report as an entry of the timeline that changes no status: its SMS took over."""
    return dataclasses.replace(
        report,
        status=None,
        description=f"{report.description}; sent as SMS {sms_id} instead",
        error_code=None,
        is_final=False,
        channel_unavailable=False,
    )
