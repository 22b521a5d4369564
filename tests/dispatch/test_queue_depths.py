"""A worker's RabbitMQ queue depths for /metrics: ready messages per channel and in the
dead-letter queue, on the local broker (a vhost of this run's, the fixtures of
test_rabbitmq_queue.py; nothing here restarts the broker)."""

from __future__ import annotations

import asyncio

from test_rabbitmq_queue import MakeQueue, item, make_queue, url, vhost  # noqa: F401 - fixtures

from partner_gateway.observability.metrics import QUEUE_MESSAGES


async def test_depths_are_the_ready_messages_of_each_queue(make_queue: MakeQueue) -> None:  # noqa: F811
    queue = await make_queue()
    assert await queue.depths() == {"SMS": 0, "RCS": 0, "WHATSAPP": 0, "dead-letter": 0}
    await queue.publish([item(1, "SMS"), item(2, "SMS"), item(3, "RCS")])
    for _ in range(50):  # confirmed is enqueued; the count follows within moments
        depths = await queue.depths()
        if depths["SMS"] == 2 and depths["RCS"] == 1:
            break
        await asyncio.sleep(0.1)
    assert depths == {"SMS": 2, "RCS": 1, "WHATSAPP": 0, "dead-letter": 0}
    await queue.read_depths()
    assert QUEUE_MESSAGES.labels("SMS")._value.get() == 2
    assert QUEUE_MESSAGES.labels("dead-letter")._value.get() == 0
