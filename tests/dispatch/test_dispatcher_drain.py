"""The dispatcher's drain on a real store, with a provider at the edge that holds its hand-overs.

Stopping gives back at once the hand-overs not yet written to their provider (due now, the
attempt not counted, for any worker to take), finishes those being written and records their
outcomes; hurried, it cancels those too, and leaves them to the crash rules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from partner_gateway.channels.base import (
    Accepted,
    AlwaysAccepting,
    HandoverGuard,
    OutboundMessage,
    ReportSink,
    SubmittedPart,
    WebhookRoute,
)
from partner_gateway.config import Settings
from partner_gateway.dispatch.worker import Dispatcher
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.delivery import OutboxState
from partner_gateway.store.tables import messages, outbox
from support import BASE, Partner


@dataclass
class HeldProvider(AlwaysAccepting):
    """Holds every hand-over until `release` is set, before (`write_first=False`) or after
    marking it written."""

    write_first: bool = True
    name: str = "held"
    channel: Channel = Channel.SMS
    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: int = 0

    async def start(self, sink: ReportSink) -> None:
        return None

    async def stop(self) -> None:
        return None

    def webhook_routes(self) -> Sequence[WebhookRoute]:
        return ()

    async def send(self, message: OutboundMessage, guard: HandoverGuard) -> Accepted:
        if self.write_first:
            await guard.before_write(message.message_id)
        self.holding += 1
        await self.release.wait()
        await guard.before_write(message.message_id)
        key = f"held{message.message_id[-8:]}".lower()
        return Accepted(self.name, (SubmittedPart(1, 1, key, key),), "Accepted by the carrier", "ESME_ROK")


async def accept(client: httpx.AsyncClient, partner: Partner, count: int) -> list[str]:
    ids = []
    for number in range(count):
        sent = await client.post(
            f"{BASE}/sms/messages",
            json={"to": f"+49151123456{number:02d}", "text": f"drain {number}"},
            headers=partner.headers,
        )
        assert sent.status_code == 202, sent.text
        ids.append(sent.json()["customerMessageId"])
    return ids


async def start(
    runtime: Runtime, settings: Settings, provider: HeldProvider
) -> tuple[Dispatcher, WriteBatcher]:
    batcher = WriteBatcher(runtime.database)
    batcher.start()
    dispatcher = Dispatcher(
        settings.model_copy(update={"dispatch_poll_seconds": 0.02}), batcher, {Channel.SMS: provider}
    )
    await dispatcher.start()
    return dispatcher, batcher


async def wait_holding(provider: HeldProvider, count: int) -> None:
    for _ in range(200):
        if provider.holding >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{provider.holding} hand-overs in flight, not {count}")


async def test_stop_lets_the_handovers_in_flight_finish_and_records_them(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime, settings: Settings
) -> None:
    provider = HeldProvider()
    dispatcher, batcher = await start(runtime, settings, provider)
    await accept(client, partner, 5)
    await wait_holding(provider, 5)
    stopping = asyncio.create_task(dispatcher.stop(grace_seconds=10))
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waiting for the carrier's answers
    provider.release.set()
    await asyncio.wait_for(stopping, 5)
    await batcher.stop()
    async with runtime.database.read() as connection:
        statuses = (await connection.execute(select(messages.c.status))).scalars().all()
        left = (await connection.execute(select(outbox.c.id))).all()
    assert statuses == ["SENT"] * 5
    assert left == []


async def test_it_gives_back_what_was_not_written_and_hurried_leaves_what_was(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime, settings: Settings
) -> None:
    hurry = asyncio.Event()
    unwritten = HeldProvider(write_first=False)
    dispatcher, batcher = await start(runtime, settings, unwritten)
    await accept(client, partner, 3)
    await wait_holding(unwritten, 3)
    started = time.monotonic()
    await asyncio.wait_for(dispatcher.stop(grace_seconds=30, hurry=hurry), 5)  # not hurried
    await batcher.stop()
    assert time.monotonic() - started < 3  # given back at once, not waited for
    async with runtime.database.read() as connection:
        rows = (
            await connection.execute(select(outbox.c.state, outbox.c.attempts, outbox.c.lease_until))
        ).all()
    assert rows == [(OutboxState.QUEUED.value, 0, None)] * 3  # due now, for any worker

    written = HeldProvider(write_first=True)
    dispatcher, batcher = await start(runtime, settings, written)
    await wait_holding(written, 3)
    hurry = asyncio.Event()
    hurry.set()
    await asyncio.wait_for(dispatcher.stop(grace_seconds=30, hurry=hurry), 5)
    await batcher.stop()
    async with runtime.database.read() as connection:
        states = (await connection.execute(select(outbox.c.state))).scalars().all()
    assert states == [OutboxState.WRITTEN.value] * 3  # maybe sent: left to the crash rules


async def test_the_only_worker_takes_back_claims_it_never_heard_of(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    """A claim whose commit reached the store while its answer was lost with the connection:
    the store's only worker releases every claim it does not hold before it claims again."""
    await accept(client, partner, 3)
    async with runtime.database.write() as connection:
        claimed = await delivery.claim_due(connection, now_ms(), 10, 60_000, [Channel.SMS])
    held = claimed[0].outbox_id
    async with runtime.database.write() as connection:
        assert await delivery.release_unheld(connection, [held]) == 2
    async with runtime.database.read() as connection:
        rows = dict((await connection.execute(select(outbox.c.id, outbox.c.state))).all())
        attempts = set((await connection.execute(select(outbox.c.attempts))).scalars())
    assert rows.pop(held) == OutboxState.CLAIMED.value
    assert set(rows.values()) == {OutboxState.QUEUED.value}
    assert attempts == {0, 1}
