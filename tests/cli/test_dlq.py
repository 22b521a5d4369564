"""`partner-gateway dlq list|replay` against the real RabbitMQ on 127.0.0.1:5672, in a vhost of
the test's own (deleted afterwards). The dead letters are made the way the workers make them: an
item whose handler keeps failing past the delivery limit, and a payload that does not decode."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest

from partner_gateway.dispatch.queues.base import WorkItem
from partner_gateway.dispatch.queues.rabbitmq import RabbitWorkQueue
from support import cli

HOST, PORT = "127.0.0.1", 5672
WAIT = 30.0
GARBAGE = b"\x80\x04not json"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture
def amqp_url() -> Iterator[str]:
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is not installed; these tests need the local RabbitMQ")
    vhost = f"pgw-cli-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{HOST}:{PORT}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARTNER_GATEWAY_AMQP_URL", raising=False)


@pytest.fixture
async def queue(amqp_url: str) -> AsyncIterator[RabbitWorkQueue]:
    # The workers' queue (default prefix and delivery limit), retrying fast.
    async with RabbitWorkQueue(amqp_url, retry_delay=0.01) as work_queue:
        yield work_queue


async def make_dead_letters(queue: RabbitWorkQueue, amqp_url: str) -> WorkItem:
    item = WorkItem(7, "msg_01DEAD", "SMS", 3)
    await queue.publish([item])
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(GARBAGE, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue.queue_name("SMS"),
        )

    async def broken(_: WorkItem) -> None:
        raise RuntimeError("provider adapter bug")

    consumer = asyncio.create_task(queue.consume("SMS", broken, prefetch=1))
    try:
        async with asyncio.timeout(WAIT):
            while len(await queue.dead_letters(10)) < 2:
                await asyncio.sleep(0.1)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    return item


async def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, env, *args, check=False)


async def test_list_shows_dead_letters_and_replay_sends_the_decodable_ones_back(
    queue: RabbitWorkQueue, amqp_url: str, tmp_path: object
) -> None:
    item = await make_dead_letters(queue, amqp_url)
    env = {"PARTNER_GATEWAY_AMQP_URL": amqp_url, "PARTNER_GATEWAY_DATA_DIR": str(tmp_path)}

    listed = await run(env, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)
    by_kind = {letter["messageId"]: letter for letter in letters}
    dead = by_kind["msg_01DEAD"]
    assert (dead["outboxId"], dead["channel"], dead["attempt"]) == (7, "SMS", 3)
    assert (dead["queue"], dead["reason"], dead["replays"]) == (
        "partner-gateway.dispatch.sms",
        "delivery_limit",
        0,
    )
    assert dead["deadLetteredAt"]
    assert (dead["error"], dead["payload"]) == (None, None)
    garbage = by_kind[None]
    assert (garbage["reason"], garbage["payload"]) == ("rejected", "\\x80\\x04not json")
    assert "UTF-8" in garbage["error"]

    human = await run(env, "dlq", "list")
    assert "msg_01DEAD (SMS, outbox 7, attempt 3)" in human.stdout
    assert "undecodable:" in human.stdout
    one = await run(env, "dlq", "list", "--limit", "1", "--json")
    assert len(json.loads(one.stdout)) == 1
    assert len(json.loads((await run(env, "dlq", "list", "--json")).stdout)) == 2  # listing kept them

    replayed = await run(env, "dlq", "replay", "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout) == {"replayed": 1}
    left = json.loads((await run(env, "dlq", "list", "--json")).stdout)
    assert [letter["messageId"] for letter in left] == [None]  # garbage stays for a person
    assert (await run(env, "dlq", "replay")).stdout.strip() == "replayed 0 dead letters"

    back: list[WorkItem] = []

    async def record(work: WorkItem) -> None:
        back.append(work)

    consumer = asyncio.create_task(queue.consume("SMS", record, prefetch=1))
    try:
        async with asyncio.timeout(WAIT):
            while not back:
                await asyncio.sleep(0.05)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    assert back == [item]


@pytest.mark.usefixtures("no_broker")
@pytest.mark.parametrize("command", ["list", "replay"])
async def test_without_a_broker_configured_the_commands_say_which_setting(command: str) -> None:
    result = await run({}, "dlq", command)
    assert result.returncode == 2
    assert "PARTNER_GATEWAY_AMQP_URL" in result.stderr
    assert "Traceback" not in result.stderr
    as_json = await run({}, "dlq", command, "--json")
    assert as_json.returncode == 2
    assert "PARTNER_GATEWAY_AMQP_URL" in json.loads(as_json.stdout)["error"]


async def test_an_unreachable_broker_fails_cleanly_without_showing_the_password() -> None:
    env = {"PARTNER_GATEWAY_AMQP_URL": "amqp://guest:hunter2@127.0.0.1:1/"}
    result = await run(env, "dlq", "list")
    assert result.returncode == 1
    assert "cannot connect to RabbitMQ" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
