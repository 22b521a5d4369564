"""The RabbitMQ work queue against the real broker on 127.0.0.1:5672 (see /work/shared/services.md).

The run gets a fresh vhost (rabbitmqctl add_vhost, deleted at the end); each test its own queue
prefix inside it. The broker-restart test stops and starts the RabbitMQ application of the
machine (`rabbitmqctl stop_app` / `start_app`), which drops every connection to it for a few
seconds. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aio_pika
import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.dispatch.queues.base import (
    WorkItem,
    WorkItemDecodeError,
    WorkQueue,
    WorkQueueError,
    WorkQueueUnavailable,
)
from partner_gateway.dispatch.queues.rabbitmq import RabbitWorkQueue, safe_url

HOST, PORT = "127.0.0.1", 5672
PICKLED = b"\x80\x04\x95\x19\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01v\x94K\x01\x8c\toutbox_id\x94K\x01u."


def _rabbitmqctl(*args: str, timeout: float = 60) -> None:
    result = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode and "start_app" in result.stderr:
        # Another test restarts the broker; wait for it to be back rather than fail.
        subprocess.run(["rabbitmqctl", "await_startup"], capture_output=True, timeout=timeout, check=False)
        result = subprocess.run(
            ["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    if result.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip()}")


async def rabbitmqctl(*args: str, timeout: float = 120) -> None:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {stderr.decode().strip()}")


def _listening() -> bool:
    try:
        socket.create_connection((HOST, PORT), timeout=3).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def vhost() -> Iterator[str]:
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is not installed; these tests need the local RabbitMQ")
    if not _listening():
        # A run killed in the middle of the restart test leaves the node up with the app stopped
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _rabbitmqctl("start_app", timeout=60)
    if not _listening():
        pytest.fail(
            f"RabbitMQ is not listening on {HOST}:{PORT}; start it with `rabbitmq-server -detached` "
            "(see /work/shared/services.md)"
        )
    name = f"pgw-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        _rabbitmqctl("delete_vhost", name)


@pytest.fixture
def url(vhost: str) -> str:
    return f"amqp://guest:guest@{HOST}:{PORT}/{vhost}"


MakeQueue = Callable[..., Awaitable[RabbitWorkQueue]]


@pytest.fixture
async def make_queue(url: str) -> AsyncIterator[MakeQueue]:
    """Started queues on this test's own prefix (one connection each), closed afterwards."""
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    created: list[RabbitWorkQueue] = []

    async def make(**options: Any) -> RabbitWorkQueue:
        options.setdefault("prefix", prefix)
        options.setdefault("retry_delay", 0.02)
        queue = RabbitWorkQueue(url, **options)
        created.append(queue)
        await queue.start()
        return queue

    yield make
    for queue in created:
        await queue.close()


def item(outbox_id: int, channel: str = "SMS", attempt: int = 0) -> WorkItem:
    return WorkItem(outbox_id=outbox_id, message_id=f"msg-{outbox_id}", channel=channel, attempt=attempt)


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Recorder:
    """A handler that records what it was given."""

    def __init__(self, delay: float = 0.0) -> None:
        self.items: list[WorkItem] = []
        self.delay = delay

    async def __call__(self, work: WorkItem) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.items.append(work)

    @property
    def ids(self) -> set[int]:
        return {work.outbox_id for work in self.items}


@contextlib.asynccontextmanager
async def consuming(
    queue: WorkQueue, channel: str, handler: Callable[[WorkItem], Awaitable[None]], prefetch: int = 10
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(queue.consume(channel, handler, prefetch=prefetch))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


async def consumer_count(url: str, queue_name: str) -> int:
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        return queue.declaration_result.consumer_count or 0
    finally:
        await connection.close()


async def wait_for_consumers(url: str, queue_name: str, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError):
            if await consumer_count(url, queue_name) == count:
                return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {count} consumers on {queue_name}")
        await asyncio.sleep(0.1)


async def wait_for_dead_letters(queue: RabbitWorkQueue, count: int, timeout: float = 15.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(letters := await queue.dead_letters(100)) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {count} dead letters")
        await asyncio.sleep(0.05)
    return letters


# -- the wire format ---------------------------------------------------------------------------


def test_work_item_round_trips_as_versioned_json() -> None:
    work = item(42, "WHATSAPP", attempt=3)
    assert work.encode() == (b'{"v":1,"outbox_id":42,"message_id":"msg-42","channel":"WHATSAPP","attempt":3}')
    assert WorkItem.decode(work.encode()) == work
    assert (
        WorkItem.decode(
            b'{"v":1,"outbox_id":42,"message_id":"msg-42","channel":"WHATSAPP",'
            b'"attempt":3,"added_later":true}'
        )
        == work
    )


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (PICKLED, "not UTF-8"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'{"outbox_id":1,"message_id":"m","channel":"SMS","attempt":0}', "no version"),
        (
            b'{"v":2,"outbox_id":1,"message_id":"m","channel":"SMS","attempt":0}',
            "unsupported work item version 2",
        ),
        (
            b'{"v":"1","outbox_id":1,"message_id":"m","channel":"SMS","attempt":0}',
            "unsupported work item version '1'",
        ),
        (b'{"v":1,"message_id":"m","channel":"SMS","attempt":0}', "no 'outbox_id'"),
        (
            b'{"v":1,"outbox_id":true,"message_id":"m","channel":"SMS","attempt":0}',
            "'outbox_id' must be an integer",
        ),
        (b'{"v":1,"outbox_id":1,"message_id":"m","channel":"FAX","attempt":0}', "channel must be one of"),
        (b'{"v":1,"outbox_id":0,"message_id":"m","channel":"SMS","attempt":0}', "positive"),
        (b" " * 70_000, "too large"),
        (b'{"v":null,"outbox_id":1,"message_id":"m","channel":"SMS","attempt":0}', "no version"),
        (b'{"v":2,"message_id":"m"}', "unsupported work item version 2"),  # the version comes first
        (
            b'{"v":1,"outbox_id":1,"message_id":7,"channel":"SMS","attempt":0}',
            "'message_id' must be a string",
        ),
        (b'{"v":1,"outbox_id":1,"message_id":"","channel":"SMS","attempt":0}', "non-empty string"),
        (b'{"v":1,"outbox_id":1.0,"message_id":"m","channel":"SMS","attempt":0}', "integer, not float"),
        (b'{"v":1,"outbox_id":1,"message_id":"m","channel":"SMS"}', "no 'attempt'"),
        (b'{"v":1,"outbox_id":1,"message_id":"m","channel":"SMS","attempt":-1}', "non-negative"),
    ],
)
def test_decoding_refuses_garbage_and_unknown_versions(payload: bytes, error: str) -> None:
    with pytest.raises(WorkItemDecodeError, match=error):
        WorkItem.decode(payload)


@given(
    outbox_id=st.integers(1, 2**63),
    message_id=st.text(st.characters(max_codepoint=126), min_size=1),  # ids are ASCII (domain.ids)
    channel=st.sampled_from(["SMS", "RCS", "WHATSAPP"]),
    attempt=st.integers(0, 2**31),
)
def test_encoding_is_byte_for_byte_what_v1_writers_published(
    outbox_id: int, message_id: str, channel: str, attempt: int
) -> None:
    work = WorkItem(outbox_id, message_id, channel, attempt)
    document = {
        "v": 1,
        "outbox_id": outbox_id,
        "message_id": message_id,
        "channel": channel,
        "attempt": attempt,
    }
    assert work.encode() == json.dumps(document, separators=(",", ":")).encode()
    assert WorkItem.decode(work.encode()) == work


def test_urls_lose_their_password() -> None:
    assert safe_url("amqp://gw:s3cret@mq:5672/prod") == "amqp://gw:******@mq:5672/prod"
    assert safe_url("amqp://mq/") == "amqp://mq/"


# -- against the broker ------------------------------------------------------------------------


async def test_publish_consume_round_trip(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    await queue.publish([item(1), item(2, "WHATSAPP"), item(3), item(4, "RCS", attempt=2)])
    sms, rcs = Recorder(), Recorder()
    async with consuming(queue, "SMS", sms), consuming(queue, "rcs", rcs):
        await wait_until(lambda: sms.ids == {1, 3} and rcs.ids == {4}, "SMS and RCS items")
    assert sorted(sms.items, key=lambda work: work.outbox_id) == [item(1), item(3)]
    assert rcs.items == [item(4, "RCS", attempt=2)]


async def test_topology_is_declared_idempotently(make_queue: MakeQueue) -> None:
    first = await make_queue()
    await make_queue(prefix=first.prefix)  # same topology again: fine
    with pytest.raises(WorkQueueError, match="delivery_limit"):
        await make_queue(prefix=first.prefix, delivery_limit=9)


async def test_prefetch_bounds_concurrent_handlers(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    running = peak = 0
    done: set[int] = set()

    async def handler(work: WorkItem) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        done.add(work.outbox_id)

    await queue.publish([item(n) for n in range(1, 13)])
    async with consuming(queue, "SMS", handler, prefetch=3):
        await wait_until(lambda: len(done) == 12, "12 items")
    assert peak == 3


@pytest.mark.parametrize("kill", ["cancel the consume task", "close its connection"])
async def test_delivery_is_acknowledged_only_after_the_handler_returns(
    make_queue: MakeQueue, kill: str
) -> None:
    doomed, survivor = await make_queue(), await make_queue()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hangs(work: WorkItem) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(doomed.consume("SMS", hangs, prefetch=1))
    await doomed.publish([item(7)])
    await asyncio.wait_for(started.wait(), 10)
    seen = Recorder()
    async with consuming(survivor, "SMS", seen):
        await asyncio.sleep(0.5)
        assert seen.items == []  # in a handler, hence unacknowledged, hence nobody else's
        if kill == "cancel the consume task":
            task.cancel()
        else:
            await doomed.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        await wait_until(lambda: seen.ids == {7}, "the redelivery to the other consumer")
    assert cancelled.is_set()
    assert seen.items == [item(7)]


async def test_a_failing_handler_gets_the_item_again(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    calls: Counter[int] = Counter()
    done: set[int] = set()

    async def flaky(work: WorkItem) -> None:
        calls[work.outbox_id] += 1
        if calls[work.outbox_id] == 1:
            raise RuntimeError("database unavailable")
        done.add(work.outbox_id)

    await queue.publish([item(1), item(2), item(3)])
    async with consuming(queue, "SMS", flaky):
        await wait_until(lambda: done == {1, 2, 3}, "three items, each on its second delivery")
    assert calls == {1: 2, 2: 2, 3: 2}
    assert await queue.dead_letters(10) == []


async def test_past_the_delivery_limit_an_item_is_dead_lettered_inspectable_and_replayable(
    make_queue: MakeQueue,
) -> None:
    queue = await make_queue(delivery_limit=2)
    calls: Counter[int] = Counter()

    async def broken(work: WorkItem) -> None:
        calls[work.outbox_id] += 1
        raise RuntimeError("provider adapter bug")

    await queue.publish([item(5, attempt=1)])
    async with consuming(queue, "SMS", broken):
        [letter] = await wait_for_dead_letters(queue, 1)
    assert calls[5] == 3  # the first delivery plus delivery_limit redeliveries
    assert letter.item == item(5, attempt=1)
    assert letter.payload == item(5, attempt=1).encode()
    assert (letter.queue, letter.reason, letter.death_count, letter.replays) == (
        queue.queue_name("SMS"),
        "delivery_limit",
        1,
        0,
    )
    assert letter.error is None
    assert letter.dead_lettered_at is not None
    assert await queue.dead_letters(10) == [letter]  # inspecting leaves it there

    assert await queue.replay_dead_letters(10) == 1
    assert await queue.dead_letters(10) == []
    async with consuming(queue, "SMS", broken):  # still broken: back in the DLQ, replayed once
        [again] = await wait_for_dead_letters(queue, 1)
    assert (again.item, again.replays, calls[5]) == (item(5, attempt=1), 1, 6)

    assert await queue.replay_dead_letters(10) == 1
    fixed = Recorder()
    async with consuming(queue, "SMS", fixed):
        await wait_until(lambda: fixed.ids == {5}, "the replayed item")
    assert fixed.items == [item(5, attempt=1)]
    assert await queue.dead_letters(10) == []


async def test_an_undecodable_payload_goes_straight_to_the_dead_letter_queue(
    make_queue: MakeQueue, url: str
) -> None:
    queue = await make_queue()
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        for body in (PICKLED, b'{"v":99}'):
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue.queue_name("SMS"),
            )
    finally:
        await connection.close()
    await queue.publish([item(8)])
    seen = Recorder()
    async with consuming(queue, "SMS", seen):
        await wait_until(lambda: seen.ids == {8}, "the valid item")
        letters = await wait_for_dead_letters(queue, 2)
    assert seen.items == [item(8)]  # the handler never saw the garbage
    assert [(letter.payload, letter.item, letter.reason) for letter in letters] == [
        (PICKLED, None, "rejected"),
        (b'{"v":99}', None, "rejected"),
    ]
    assert "not UTF-8" in (letters[0].error or "")
    assert "unsupported work item version 99" in (letters[1].error or "")
    assert await queue.replay_dead_letters(10) == 0  # garbage stays for a human
    assert len(await queue.dead_letters(10)) == 2


async def test_two_consumers_share_a_queue_without_double_processing(make_queue: MakeQueue, url: str) -> None:
    first, second = await make_queue(), await make_queue()
    one, two = Recorder(delay=0.005), Recorder(delay=0.005)
    async with consuming(first, "SMS", one, prefetch=2), consuming(second, "SMS", two, prefetch=2):
        await wait_for_consumers(url, first.queue_name("SMS"), 2)
        await first.publish([item(n) for n in range(1, 101)])
        await wait_until(lambda: len(one.items) + len(two.items) >= 100, "100 items")
        await asyncio.sleep(0.3)  # a duplicate, if any, would show up now
    ids = [work.outbox_id for work in one.items + two.items]
    assert sorted(ids) == list(range(1, 101))
    assert one.items
    assert two.items


async def test_consumer_and_publisher_recover_when_connections_drop(
    make_queue: MakeQueue, url: str, vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    queue = await make_queue()
    seen = Recorder()
    async with consuming(queue, "SMS", seen):
        await queue.publish([item(n) for n in range(1, 6)])
        await wait_until(lambda: seen.ids == set(range(1, 6)), "items before the drop")
        dropped = time.monotonic()
        await rabbitmqctl("close_all_connections", "--vhost", vhost, "--limit", "100", "test drop")
        await queue.publish([item(n) for n in range(6, 11)])
        await wait_until(lambda: seen.ids == set(range(1, 11)), "items after the drop", timeout=30)
        print(f"\nconnection drop: consuming again after {time.monotonic() - dropped:.2f} s")
    assert "reconnected" in caplog.text
    assert "guest:guest" not in caplog.text


async def test_a_wrong_password_is_reported_without_the_password(
    vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    queue = RabbitWorkQueue(f"amqp://guest:Wr0ngS3cret@{HOST}:{PORT}/{vhost}")
    with pytest.raises(WorkQueueUnavailable) as raised:
        await queue.start()
    await queue.close()
    assert "guest:******@" in str(raised.value)
    assert "Wr0ngS3cret" not in str(raised.value) + caplog.text


async def test_broker_restart_loses_nothing_and_the_consumer_resumes(make_queue: MakeQueue, url: str) -> None:
    queue = await make_queue(publish_timeout=120)
    seen = Recorder()
    async with consuming(queue, "SMS", seen):
        await queue.publish([item(n) for n in range(1, 6)])
        await wait_until(lambda: seen.ids == set(range(1, 6)), "items before the restart")
        await queue.publish([item(n, "RCS") for n in range(101, 106)])  # nobody consumes RCS yet

        began = time.monotonic()
        try:
            await rabbitmqctl("stop_app")
            stopped = time.monotonic()
            during = asyncio.create_task(queue.publish([item(n) for n in range(6, 11)]))
            await asyncio.sleep(1)
            assert not during.done()  # waits for the broker, does not give up or pretend
        finally:
            await rabbitmqctl("start_app")
        started = time.monotonic()
        await asyncio.wait_for(during, 120)
        confirmed = time.monotonic()
        await queue.publish([item(n) for n in range(11, 16)])
        await wait_until(lambda: seen.ids == set(range(1, 16)), "items after the restart", timeout=120)
        resumed = time.monotonic()
    rcs = Recorder()
    async with consuming(queue, "RCS", rcs):
        await wait_until(lambda: rcs.ids == set(range(101, 106)), "RCS items from before the restart")
    print(
        f"\nbroker restart: stop_app {stopped - began:.1f} s, start_app {started - stopped:.1f} s, "
        f"publish made while down confirmed {confirmed - started:.1f} s after start_app, "
        f"consumer caught up {resumed - started:.1f} s after start_app"
    )
    assert len(seen.items) >= 15  # at least once: a delivery unacked at the drop may come twice


async def test_a_paused_consumer_finishes_what_it_runs_and_takes_nothing_more(
    make_queue: MakeQueue, url: str
) -> None:
    """A worker that loses its carrier bind pauses: hand-overs running finish (acknowledged),
    the rest stays queued for the workers that can send."""
    queue = await make_queue()
    await queue.publish([item(number) for number in range(1, 21)])
    handler = Recorder(delay=0.3)
    pause = asyncio.Event()
    consumer = asyncio.create_task(queue.consume("SMS", handler, prefetch=4, until=pause.wait()))
    await wait_for_consumers(url, queue.queue_name("SMS"), 1)
    await asyncio.sleep(0.1)  # four deliveries are with their handlers now
    pause.set()
    await asyncio.wait_for(consumer, 15)  # returns once the running handlers are done
    assert len(handler.items) == 4
    # Gone at the broker. A quorum queue counts its consumers from its replicated state, which
    # can report the cancelled one for a moment after basic.cancel-ok (seen once in CI).
    await wait_for_consumers(url, queue.queue_name("SMS"), 0, timeout=10)

    rest = Recorder()
    async with consuming(queue, "SMS", rest):
        await wait_until(lambda: len(rest.items) == 16, "the other 16 items")
    assert rest.ids.isdisjoint(handler.ids)
    assert handler.ids | rest.ids == set(range(1, 21))


async def test_a_queue_serves_the_channels_it_is_given(make_queue: MakeQueue) -> None:
    """A registry's channel beyond SPEC §1's three (tests/channels/test_registry.py) gets its
    own queue; a queue refuses the channels it was not given."""
    queue = await make_queue(channels=("SMS", "FAX"))
    recorder = Recorder()
    async with consuming(queue, "FAX", recorder):
        await queue.publish([item(1, channel="FAX")])
        await wait_until(lambda: recorder.ids == {1}, "the FAX item")
    assert recorder.items[0].channel == "FAX"
    assert queue.queue_name("FAX").endswith(".dispatch.fax")
    with pytest.raises(ValueError, match="expected one of SMS, FAX"):
        queue.queue_name("RCS")
    with pytest.raises(WorkItemDecodeError, match="channel must be one of SMS, FAX"):
        WorkItem.decode(item(2, channel="RCS").encode(), ("SMS", "FAX"))
    with pytest.raises(ValueError, match="channel must be a channel's name"):
        item(3, channel="fax")
