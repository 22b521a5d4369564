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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Mapping, Sequence
from functools import partial

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.channels.base import Accepted, OutboundMessage, Provider, SendError, SubmittedPart
from partner_gateway.config import Settings
from partner_gateway.dispatch.queues.base import WorkItem, WorkQueue
from partner_gateway.dispatch.reports import apply_waiting
from partner_gateway.domain import error_codes
from partner_gateway.domain.encoding import analyze
from partner_gateway.domain.ids import new_message_id
from partner_gateway.domain.messages import NewMessage
from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.store.batching import BulkOperation, WriteBatcher
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.delivery import (
    ClaimedItem,
    GatewayReport,
    GatewayStatus,
    PartRecord,
    Submission,
)
from partner_gateway.store.repositories.messages import MessageRepository

logger = logging.getLogger(__name__)

AMBIGUOUS_DESCRIPTION = (
    "The carrier did not answer the hand-over; the message may have been sent. "
    "It was not sent again, to avoid a duplicate."
)
NO_RECEIPT_DESCRIPTION = "No delivery receipt from the carrier"
SWEEP_PAGE = 500
PARKED_RECEIPTS_INTERVAL = 2.0  # seconds; how late a receipt caught in a cross-process race can be
RECEIPT_TEXT_EXCERPT = 20  # SMPP 3.4 Appendix B: a receipt quotes the first 20 characters
_NO_RECEIPT = GatewayReport(
    DeliveryStatus.UNKNOWN, NO_RECEIPT_DESCRIPTION, "NO_RECEIPT", "gateway:no-receipt"
)


async def _mark_written(connection: AsyncConnection, outbox_ids: Sequence[int]) -> list[None]:
    await delivery.mark_written(connection, outbox_ids)
    return [None] * len(outbox_ids)


MARK_WRITTEN = BulkOperation("mark written", _mark_written)
"""Every item about to be written in a batch: one UPDATE."""


async def _record_accepted(
    connection: AsyncConnection, handovers: Sequence[tuple[ClaimedItem, Accepted]]
) -> list[None]:
    """The providers' answers: each message's parts and SENT, its item out of the outbox, and the
    receipts that arrived before the answer was recorded. A few statements for the whole batch."""
    now = now_ms()
    await delivery.record_submissions(
        connection,
        [
            Submission(item.message_id, accepted.provider, _part_records(accepted.parts))
            for item, accepted in handovers
        ],
        now,
    )
    await delivery.apply_gateway_reports(
        connection,
        [
            GatewayStatus(
                item.message_id,
                GatewayReport(
                    DeliveryStatus.SENT, accepted.description, accepted.raw_state, "gateway:submitted"
                ),
                source=accepted.provider,
            )
            for item, accepted in handovers
        ],
        now,
    )
    await delivery.finish(connection, [item.outbox_id for item, _ in handovers])
    keys: dict[str, list[str]] = {}
    for _item, accepted in handovers:
        keys.setdefault(accepted.provider, []).extend(part.provider_key for part in accepted.parts)
    for provider, provider_keys in keys.items():
        if provider_keys:
            await apply_waiting(connection, await delivery.take_pending(connection, provider, provider_keys))
    return [None] * len(handovers)


RECORD_ACCEPTED = BulkOperation("record accepted", _record_accepted)
"""Every hand-over the provider accepted in a batch, recorded together."""


def _part_records(parts: Sequence[SubmittedPart]) -> list[PartRecord]:
    return [PartRecord(p.part_no, p.parts_total, p.provider_message_id, p.provider_key) for p in parts]


class _Guard:
    """Marks the item `written`, durably, before the provider writes its first byte."""

    def __init__(self, batcher: WriteBatcher, outbox_id: int) -> None:
        self._batcher = batcher
        self._outbox_id = outbox_id
        self.written = False

    async def before_write(self, message_id: str) -> None:
        if not self.written:
            await self._batcher.submit_bulk(MARK_WRITTEN, self._outbox_id)
            self.written = True


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
        self._held: set[int] = set()  # outbox ids this worker is handing over: their leases are renewed
        self._claim_published = BulkOperation("claim published", self._take_published)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.delivered_to_provider = 0

    def wake(self) -> None:
        """New work was accepted (in this process): look now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        await self._recover(everything=self._exclusive)
        self._tasks = [
            asyncio.create_task(self._sweep_loop(), name="dispatch-expiry"),
            asyncio.create_task(self._renew_loop(), name="dispatch-lease-renewal"),
            asyncio.create_task(self._parked_receipts_loop(), name="dispatch-parked-receipts"),
        ]
        if self._queue is None:
            self._tasks.append(asyncio.create_task(self._claim_loop(), name="dispatch-claims"))
        else:
            self._tasks.append(asyncio.create_task(self._relay_loop(self._queue), name="dispatch-relay"))
            prefetch = max(1, self._settings.dispatch_max_in_flight // max(1, len(self._providers)))
            for channel, provider in self._providers.items():
                self._tasks.append(
                    asyncio.create_task(
                        self._consume_while_accepting(self._queue, channel, provider, prefetch),
                        name=f"dispatch-consume-{channel.value}",
                    )
                )
        if not self._exclusive:
            self._tasks.append(asyncio.create_task(self._recovery_loop(), name="dispatch-recovery"))

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

    async def _recover(self, *, everything: bool) -> None:
        cutoff = 2**62 if everything else now_ms()
        stale = await self._batcher.submit(lambda c: delivery.release_expired_claims(c, cutoff))
        for item in stale:
            logger.warning("message %s was being handed over when a worker stopped", item.message_id)
            await self._ambiguous(item, "worker stopped during the hand-over")

    async def _renew_loop(self) -> None:
        """Keep the leases of items still being handed over (a slow carrier, a full window), so
        no other worker mistakes them for a dead worker's."""
        lease_ms = self._settings.dispatch_lease_seconds * 1000
        interval = max(0.5, self._settings.dispatch_lease_seconds / 3)
        while not self._stopping:
            await asyncio.sleep(interval)
            held = list(self._held)
            if not held:
                continue
            until = now_ms() + lease_ms
            try:
                await self._batcher.submit(partial(delivery.renew_leases, outbox_ids=held, until=until))
            except Exception:
                logger.exception("renewing %d leases failed; retrying", len(held))

    async def _parked_receipts_loop(self) -> None:
        """Apply receipts that were parked while their submission's record was in flight in
        another process (see delivery.take_pending_with_parts): late, but never lost."""
        while not self._stopping:
            await asyncio.sleep(PARKED_RECEIPTS_INTERVAL)
            try:
                while await self.apply_parked_receipts() == SWEEP_PAGE:
                    pass
            except Exception:
                logger.exception("applying parked receipts failed; retrying")

    async def apply_parked_receipts(self) -> int:
        async def apply(connection: AsyncConnection) -> int:
            waiting = await delivery.take_pending_with_parts(connection, SWEEP_PAGE)
            await apply_waiting(connection, waiting)
            return len(waiting)

        applied: int = await self._batcher.submit(apply)
        if applied:
            logger.info("applied %d receipts that had waited for their submission's record", applied)
        return applied

    async def _recovery_loop(self) -> None:
        """Return the items of workers that died (their leases ran out) to the queue."""
        interval = max(1.0, self._settings.dispatch_lease_seconds / 4)
        while not self._stopping:
            await asyncio.sleep(interval)
            try:
                await self._recover(everything=False)
            except Exception:
                logger.exception("recovering expired claims failed; retrying")

    async def _relay_loop(self, queue: WorkQueue) -> None:
        """The outbox relay: publish due items, confirmed by the broker, then leave them to the
        workers. A publish that fails puts the items back; an item published but never taken
        (its message lost, or dead-lettered) is due again when its lease runs out."""
        lease_ms = self._settings.dispatch_lease_seconds * 1000
        limit = self._settings.dispatch_batch
        while not self._stopping:
            self._wake.clear()
            try:
                taken = await self._batcher.submit(
                    lambda c: delivery.take_for_publishing(c, now_ms(), limit, lease_ms)
                )
            except Exception:
                logger.exception("reading due outbox items failed; retrying")
                await asyncio.sleep(1)
                continue
            if taken:
                items = [
                    WorkItem(outbox_id, message_id, channel, attempts)
                    for outbox_id, message_id, channel, attempts in taken
                ]
                try:
                    await queue.publish(items)
                except Exception:
                    logger.exception("publishing %d items failed; they are due again", len(items))
                    ids = [item.outbox_id for item in items]
                    await self._batcher.submit(lambda c, ids=ids: delivery.unpublish(c, ids))  # type: ignore[misc]
                    await asyncio.sleep(1)
                    continue
            if len(taken) < limit:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._settings.dispatch_poll_seconds)

    async def _consume_while_accepting(
        self, queue: WorkQueue, channel: Channel, provider: Provider, prefetch: int
    ) -> None:
        """Take the channel's work only while this worker can hand it over (it holds one of the
        carrier's binds, say): a worker without one would only hand every message back."""
        while not self._stopping:
            await provider.wait_accepting(True)
            await queue.consume(
                channel.value, self._handle_work, prefetch=prefetch, until=provider.wait_accepting(False)
            )

    async def _handle_work(self, work: WorkItem) -> None:
        """One item from the queue: take it in the store (another worker may have it already, if
        the queue delivered it twice), hand it over, record the outcome; the queue message is
        acknowledged after this returns, so after the outcome is committed."""
        item = await self._batcher.submit_bulk(self._claim_published, work.outbox_id)
        if item is None:
            return
        await self._deliver_once(item)

    async def _take_published(
        self, connection: AsyncConnection, outbox_ids: Sequence[int]
    ) -> list[ClaimedItem | None]:
        """The items of queue messages received together, claimed with one statement. An id twice
        in one batch (the queue delivered it twice) is handed to its first receiver only."""
        lease_ms = self._settings.dispatch_lease_seconds * 1000
        claimed = await delivery.claim_published(connection, outbox_ids, now_ms(), lease_ms)
        return [claimed.pop(outbox_id, None) for outbox_id in outbox_ids]

    async def _claim_loop(self) -> None:
        lease_ms = self._settings.dispatch_lease_seconds * 1000
        while not self._stopping:
            # Only channels this worker can hand over now (see _consume_while_accepting).
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
                task = asyncio.create_task(self._deliver(item), name=f"deliver-{item.message_id}")
                self._in_flight.add(task)
                task.add_done_callback(self._handed_over)
            if len(items) < limit:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._settings.dispatch_poll_seconds)

    def _handed_over(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._settings.dispatch_max_in_flight - len(self._in_flight) >= self._claim_size:
            self._room.set()

    async def _deliver(self, item: ClaimedItem) -> None:
        try:
            await self._deliver_once(item)
        except Exception:
            # Our own failure (store unavailable, a bug): the claim's lease returns the item.
            logger.exception("delivering %s failed inside the gateway", item.message_id)

    async def _deliver_once(self, item: ClaimedItem) -> None:
        self._held.add(item.outbox_id)
        try:
            await self._hand_over(item)
        finally:
            self._held.discard(item.outbox_id)

    async def _hand_over(self, item: ClaimedItem) -> None:
        now = now_ms()
        if now >= item.expires_at:
            await self._fail(
                item,
                DeliveryStatus.EXPIRED,
                error_codes.EXPIRED_BEFORE_HANDOVER.meaning,
                error_codes.EXPIRED_BEFORE_HANDOVER.code,
                "validity-ended",
            )
            return
        provider = self._providers.get(item.channel)
        if provider is None:
            await self._fail(
                item,
                DeliveryStatus.ERROR,
                error_codes.NO_PROVIDER.meaning,
                error_codes.NO_PROVIDER.code,
                "no-provider",
            )
            return
        message = OutboundMessage(
            message_id=item.message_id,
            company_id=item.company_id,
            channel=item.channel,
            to=item.to,
            sender=item.sender,
            content=json.loads(item.body),
            created_at=item.created_at,
            expires_at=item.expires_at,
            parts_done=item.parts_done,
        )
        guard = _Guard(self._batcher, item.outbox_id)
        try:
            accepted = await provider.send(message, guard)
        except SendError as error:
            await self._on_error(item, error, guard.written)
            return
        except Exception as error:
            logger.exception("provider %s raised while sending %s", provider.name, item.message_id)
            failure = f"Provider failure: {type(error).__name__}"
            wrapped = SendError("ambiguous", failure) if guard.written else SendError("retry", failure)
            await self._on_error(item, wrapped, guard.written)
            return
        await self._batcher.submit_bulk(RECORD_ACCEPTED, (item, accepted))
        self.delivered_to_provider += 1

    async def _on_error(self, item: ClaimedItem, error: SendError, written: bool) -> None:
        if error.channel_unavailable and json.loads(item.body).get("fallbackSms"):
            await self._send_fallback(item, error)
            return
        if error.kind == "permanent":
            await self._fail(
                item,
                DeliveryStatus.ERROR,
                error.description,
                error.code,
                error.code or "rejected",
                accepted=error,
            )
            return
        if error.kind == "ambiguous" and not self._settings.resend_ambiguous:
            await self._ambiguous(item, error.description, accepted=error)
            return
        delay = error.retry_after or min(
            2.0 ** min(item.attempts, 16), self._settings.retry_max_delay_seconds
        )
        delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
        next_attempt = now_ms() + int(delay * 1000)
        if next_attempt >= item.expires_at:
            await self._fail(
                item,
                DeliveryStatus.EXPIRED,
                error_codes.EXPIRED_BEFORE_HANDOVER.meaning,
                error_codes.EXPIRED_BEFORE_HANDOVER.code,
                "validity-ended",
                accepted=error,
            )
            return
        if item.attempts >= self._settings.retry_max_attempts:
            await self._fail(
                item,
                DeliveryStatus.ERROR,
                f"{error_codes.RETRIES_EXHAUSTED.meaning} Last: {error.description}",
                error_codes.RETRIES_EXHAUSTED.code,
                "retries-exhausted",
                accepted=error,
            )
            return

        async def reschedule(connection: AsyncConnection) -> None:
            now = now_ms()
            parts_done = item.parts_done + len(error.accepted_parts)
            await self._record_partial(connection, item, error, now)
            await delivery.reschedule(connection, item.outbox_id, next_attempt, error.description, parts_done)
            await delivery.apply_gateway_report(
                connection,
                item.message_id,
                GatewayReport(
                    DeliveryStatus.UNKNOWN,
                    f"Will retry: {error.description}",
                    f"retry:{error.code or error.kind}",
                    f"gateway:retry:{item.attempts}",
                    queued=True,
                ),
                now,
            )

        await self._batcher.submit(reschedule)

    async def _send_fallback(self, item: ClaimedItem, error: SendError) -> None:
        """Send the message's fallback SMS in its place, linked both ways in the timelines; the
        original's status then follows the SMS's ("Sent as SMS msg_…: Delivered to the handset")."""
        content = json.loads(item.body)
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
        self.wake()

    async def _record_partial(
        self, connection: AsyncConnection, item: ClaimedItem, error: SendError, now: int
    ) -> None:
        if error.accepted_parts:
            parts = _part_records(error.accepted_parts)
            await delivery.record_parts(connection, item.message_id, error.provider, parts, now)

    async def _fail(
        self,
        item: ClaimedItem,
        status: DeliveryStatus,
        description: str,
        code: str | None,
        dedup: str,
        accepted: SendError | None = None,
    ) -> None:
        async def fail(connection: AsyncConnection) -> None:
            now = now_ms()
            if accepted is not None:
                await self._record_partial(connection, item, accepted, now)
            await delivery.apply_gateway_report(
                connection,
                item.message_id,
                GatewayReport(status, description, dedup, f"gateway:{dedup}", error_code=code),
                now,
            )
            await delivery.finish(connection, [item.outbox_id])

        await self._batcher.submit(fail)

    async def _ambiguous(self, item: ClaimedItem, reason: str, accepted: SendError | None = None) -> None:
        if self._settings.resend_ambiguous:
            await self._batcher.submit(
                lambda c: delivery.reschedule(
                    c, item.outbox_id, now_ms(), f"ambiguous: {reason}", item.parts_done
                )
            )
            return
        await self._fail(
            item, DeliveryStatus.UNKNOWN, AMBIGUOUS_DESCRIPTION, None, "no-answer", accepted=accepted
        )
        await self._watch_for_receipt(item)

    async def _watch_for_receipt(self, item: ClaimedItem) -> None:
        """If the carrier did take an unanswered single-part SMS, its receipt will name the
        destination and the text's start: note them, so that receipt is recognised."""
        provider = self._providers.get(item.channel)
        text = str(json.loads(item.body).get("text", ""))
        if provider is None or item.channel is not Channel.SMS or not text or analyze(text).segments != 1:
            return
        excerpt = text[:RECEIPT_TEXT_EXCERPT].strip()

        async def remember(connection: AsyncConnection) -> None:
            waiting = await delivery.remember_unconfirmed(
                connection, item.message_id, provider.name, item.to.lstrip("+"), excerpt, now_ms()
            )
            await apply_waiting(connection, waiting)

        await self._batcher.submit(remember)

    async def _sweep_loop(self) -> None:
        while not self._stopping:
            try:
                await self.sweep_once()
            except Exception:
                logger.exception("expiry sweep failed; retrying at the next interval")
            await asyncio.sleep(self._settings.sweep_interval_seconds)

    async def sweep_once(self, now: int | None = None) -> int:
        """Give up waiting for receipts of messages past validity plus grace: UNKNOWN."""
        cutoff = (now if now is not None else now_ms()) - self._settings.receipt_grace_seconds * 1000

        async def sweep_page(connection: AsyncConnection) -> int:
            """One page found and given up on in one transaction, not one write each."""
            ids = await delivery.lapsed_without_receipt(connection, cutoff, SWEEP_PAGE)
            statuses = [GatewayStatus(message_id, _NO_RECEIPT) for message_id in ids]
            await delivery.apply_gateway_reports(connection, statuses, now_ms())
            return len(ids)

        swept = 0
        while True:
            page = await self._batcher.submit(sweep_page)
            swept += page
            if page < SWEEP_PAGE:
                return swept
