"""Fresh events handed to the process's own sender in memory (inserted already claimed by it), on
both stores: delivered without a claim; lost with the process (handed, never sent) and retaken
once the lease ends, never before; two senders never both send one."""

from __future__ import annotations

import asyncio
from collections import Counter

from callback_support import StartReceiver, message_with_changes, sender_for, until
from sqlalchemy import select, update

from partner_gateway.domain.reports import GATEWAY, StatusReport
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.delivery.callback_events import DueEvent
from partner_gateway.store.tables import callback_events, messages
from support import Partner, seed


class DyingProcess:
    """A process whose sender took fresh events and died before sending them (SIGKILL): what
    it was handed is gone with it, its claims stay in the store until their lease ends."""

    lease_ms = 1500

    def __init__(self, room: int = 100) -> None:
        self.lost: list[DueEvent] = []
        self._room = room

    def room(self) -> int:
        return self._room

    def take_fresh(self, events: list[DueEvent]) -> None:
        self.lost.extend(events)


async def claims(runtime: Runtime) -> list[int | None]:
    async with runtime.database.read() as connection:
        return list((await connection.execute(select(callback_events.c.claimed_until))).scalars())


async def test_fresh_events_are_handed_in_memory_without_a_claim(
    runtime: Runtime, partner: Partner, start_receiver: StartReceiver
) -> None:
    receiver, url = await start_receiver()
    # It looks for due events once at its start, then not for a minute: only a hand-off delivers.
    sender = sender_for(runtime, callback_poll_seconds=60.0)
    await sender.start()
    try:
        await asyncio.sleep(0.1)  # its first (empty) look is over
        before = now_ms()
        await message_with_changes(runtime, partner.company_id, url)
        stored = await claims(runtime)
        await until(lambda: sender.counts["delivered"] == 2, timeout=10)
    finally:
        await sender.stop()
    assert len(receiver.received) == 2
    assert len(stored) == 2
    # Inserted claimed by this process, a lease long (unless already delivered and cleared).
    assert all(claim is None or claim >= before + sender.lease_ms for claim in stored)
    assert await claims(runtime) == [None, None]


async def test_events_handed_to_a_process_that_died_are_retaken_after_the_lease_only(
    runtime: Runtime, partner: Partner, start_receiver: StartReceiver
) -> None:
    receiver, url = await start_receiver()
    dying = DyingProcess()
    runtime.database.handoff = dying
    before = now_ms()
    try:
        await message_with_changes(runtime, partner.company_id, url)
    finally:
        runtime.database.handoff = None
    assert len(dying.lost) == 2
    assert all(claim is not None for claim in await claims(runtime))
    other = sender_for(runtime)  # another process's sender, polling every 20 ms
    await other.start()
    try:
        await until(lambda: other.counts["delivered"] == 2, timeout=10)
    finally:
        await other.stop()
    assert sorted(r.event_id for r in receiver.received) == sorted(e.id for e in dying.lost)
    # Not before the dead one's lease ended: within it, the event was the dead process's.
    first_ms = min(r.received_at for r in receiver.received) * 1000
    assert first_ms >= before + dying.lease_ms


async def test_two_senders_never_both_send_a_fresh_event(
    runtime: Runtime, partner: Partner, start_receiver: StartReceiver
) -> None:
    receiver, url = await start_receiver()
    polling, handed = sender_for(runtime), sender_for(runtime)
    await polling.start()  # polls every 20 ms
    await handed.start()  # started last: the store's writes hand their fresh events to it
    try:
        for _ in range(20):
            await message_with_changes(runtime, partner.company_id, url)
        await until(lambda: polling.counts["delivered"] + handed.counts["delivered"] >= 40, timeout=20)
        await asyncio.sleep(0.3)  # room for a duplicate to arrive
    finally:
        await handed.stop()
        await polling.stop()
    assert Counter(Counter(r.event_id for r in receiver.received).values()) == {1: 40}
    assert handed.counts["delivered"] == 40


async def test_one_transaction_of_several_status_batches_hands_no_more_than_the_room(
    runtime: Runtime, partner: Partner
) -> None:
    ids = await seed(runtime, partner.company_id, [now_ms()] * 4)
    async with runtime.database.write() as connection:
        await connection.execute(update(messages).values(callback_url="https://partner.example/cb"))
    dying = DyingProcess(room=3)
    runtime.database.handoff = dying
    try:
        async with runtime.database.write() as connection:  # as a group commit holds them
            for message_id in ids:
                report = StatusReport(
                    GATEWAY, DeliveryStatus.SENT, "SENT", "sent", now_ms(), f"{message_id}:s",
                    message_id=message_id,
                )  # fmt: skip
                await delivery.apply_gateway_reports(connection, [report], now_ms())
    finally:
        runtime.database.handoff = None
    assert len(dying.lost) == 3
    # The fourth is left to the claim loop, unclaimed.
    assert sorted(claim is None for claim in await claims(runtime)) == [False, False, False, True]
