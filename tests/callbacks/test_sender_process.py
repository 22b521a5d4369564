"""The callback sender in a process of its own (sender_process.py), on both stores: a real child
process, started as `serve` starts it, sending what this process commits (woken at once, not at
its poll), counted in this process's metrics; started again when it dies, the events it held
retaken; stopped with its parent's pipeline."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter

from callback_support import FAST, StartReceiver, delivered_in_store, message_with_changes, until
from prometheus_client import REGISTRY

from partner_gateway.callbacks.listener import Received, accept_all
from partner_gateway.runtime import Runtime
from partner_gateway.sender_process import SenderProcess, _Reports, sender_processes_of
from support import Partner, running


def attempts_counted(outcome: str) -> float:
    value = REGISTRY.get_sample_value("partner_gateway_callback_attempts_total", {"outcome": outcome})
    return value or 0.0


def restarts_counted() -> float:
    return REGISTRY.get_sample_value("partner_gateway_callback_sender_restarts_total") or 0.0


async def delivered_events(runtime: Runtime) -> int:
    async with runtime.database.read() as connection:
        return await delivered_in_store(connection)


def sender_process(runtime: Runtime, **overrides: object) -> SenderProcess:
    settings = runtime.settings.model_copy(update={**FAST, **overrides})
    return SenderProcess(settings, runtime.database, exclusive=True)


async def test_the_sender_process_sends_what_this_process_commits(
    runtime: Runtime, partner: Partner, start_receiver: StartReceiver
) -> None:
    receiver, url = await start_receiver()
    # It polls once a minute: only the wake-up after each commit makes it claim in time.
    sender = sender_process(runtime, callback_poll_seconds=60.0)
    delivered_before = attempts_counted("delivered")
    await sender.start()
    pid = sender.pid
    try:
        assert pid is not None
        assert pid != os.getpid()
        assert running(pid)
        assert sender_processes_of(os.getpid()) == [pid]  # what an operator's script finds
        assert runtime.database.handoff is sender
        message_id = await message_with_changes(runtime, partner.company_id, url)
        await until(lambda: len(receiver.received) == 2, timeout=20)
        # Its attempts reach this process's /metrics through its reports (one a second).
        await until(lambda: attempts_counted("delivered") - delivered_before == 2, timeout=10)
    finally:
        await sender.stop()
    assert [r.json()["customerMessageId"] for r in receiver.received] == [message_id] * 2
    assert sorted(r.json()["deliveryStatus"] for r in receiver.received) == ["DELIVERED", "SENT"]
    assert all(r.signature.startswith("t=") for r in receiver.received)  # signed by the child
    assert runtime.database.handoff is None
    await until(lambda: not running(pid), timeout=10)  # stopped, not left behind


async def test_a_dead_sender_process_is_started_again_and_its_events_retaken(
    runtime: Runtime, partner: Partner, start_receiver: StartReceiver
) -> None:
    seen: Counter[str] = Counter()
    hang = asyncio.Event()

    async def hang_the_first(received: Received) -> int:
        seen[received.event_id] += 1
        if not hang.is_set():  # the first attempt never answers: in flight when its process dies
            hang.set()
            await asyncio.sleep(60)
        return await accept_all(received)

    receiver, url = await start_receiver(hang_the_first)
    sender = sender_process(runtime, callback_timeout_seconds=30.0, callback_lease_seconds=600.0)
    restarts_before = restarts_counted()
    await sender.start()
    try:
        first = sender.pid
        assert first is not None
        first_message = await message_with_changes(runtime, partner.company_id, url)
        await until(hang.is_set, timeout=20)
        # The other event delivered and its outcome committed (the child gathers its writes for
        # 50 ms): killed now, only the hanging one is in flight.
        for _ in range(200):
            if await delivered_events(runtime) == 1:
                break
            await asyncio.sleep(0.05)
        assert await delivered_events(runtime) == 1
        os.kill(first, signal.SIGKILL)
        # Started again after a second; an exclusive sender releases what the dead one held
        # (long before the 10-minute lease), so the hanging event is sent again and delivered.
        await until(lambda: sender.starts == 2 and sender.pid not in (None, first), timeout=20)
        await until(lambda: len(seen) == 2 and sum(seen.values()) == 3, timeout=30)
        second_message = await message_with_changes(runtime, partner.company_id, url)
        await until(lambda: len(seen) == 4, timeout=20)
    finally:
        await sender.stop()
    assert restarts_counted() - restarts_before == 1
    assert sorted(seen.values()) == [1, 1, 1, 2]  # only the event in flight at the death came twice
    by_message = Counter(r.json()["customerMessageId"] for r in receiver.received)
    assert by_message[first_message] == 3
    assert by_message[second_message] == 2


async def test_the_sender_process_outlasts_group_signals_and_stops_with_its_parent(runtime: Runtime) -> None:
    """A terminal's Ctrl-C or a service manager's stop signals every process of the gateway: the
    child keeps sending until its parent, draining in order, stops it."""
    sender = sender_process(runtime)
    await sender.start()
    pid = sender.pid
    assert pid is not None
    try:
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert running(pid)
        assert sender.starts == 1
    finally:
        await sender.stop()
    await until(lambda: not running(pid), timeout=10)


async def test_a_burst_of_attempts_is_reported_in_lines_the_parent_reads_whole() -> None:
    """A backlog sent at once makes thousands of attempts a second: reported in lines of a few
    KB, each under the parent's reader's line limit (a single line of them all was over 64 KiB,
    and stopped the parent's reading)."""
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe()
    reader = asyncio.StreamReader()  # asyncio's default limit: 64 KiB a line
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_end, "rb", 0))
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(write_end, "wb", 0))
    reports = _Reports(transport)
    reports.attempts([("delivered", 0.0123456)] * 9_000 + [("failed", 10.0)] * 1_000)

    async def read_all() -> Counter[str]:
        outcomes: Counter[str] = Counter()
        while line := await reader.readline():
            outcomes.update(outcome for outcome, _seconds in json.loads(line)["attempts"])
        return outcomes

    reading = asyncio.create_task(read_all())
    await reports.close()
    assert await asyncio.wait_for(reading, 10) == {"delivered": 9_000, "failed": 1_000}
    assert reports.dropped == 0
