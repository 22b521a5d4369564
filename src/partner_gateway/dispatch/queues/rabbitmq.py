"""`WorkQueue` on RabbitMQ: durable quorum queues, persistent messages, publisher confirms.

Topology (declared idempotently on start, and again after every reconnect):
`<prefix>.dispatch.sms`, `.rcs`, `.whatsapp` are durable quorum queues with `x-delivery-limit`
and at-least-once dead-lettering through the fanout exchange `<prefix>.dead-letter` into the
durable quorum queue `<prefix>.dead`, which receives deliveries rejected past the delivery limit
and payloads that do not decode. `dead_letters` shows them without removing them;
`replay_dead_letters` moves the decodable ones back to their channel's queue.

The connection is `aio_pika.connect_robust`: after a dropped connection or a broker restart it
reconnects every `reconnect_interval` seconds, re-declares the topology and resumes every
consumer with its prefetch. Deliveries unacknowledged at the drop are delivered again (at least
once: a handler treats an `outbox_id` whose outcome is already recorded as done). A publish
that loses its connection waits for the reconnection and re-sends what was not confirmed, for
up to `publish_timeout` seconds. Queue arguments are fixed at creation: starting with another
`delivery_limit` than the existing queues raises `WorkQueueError`. Logs never show the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelPreconditionFailed, PublishError

from partner_gateway.dispatch.queues.base import (
    CHANNELS,
    DeadLetter,
    Handler,
    WorkItem,
    WorkItemDecodeError,
    WorkQueueError,
    WorkQueueUnavailable,
)
from partner_gateway.observability.metrics import QUEUE_MESSAGES

logger = logging.getLogger(__name__)

REPLAYS_HEADER = "x-partner-gateway-replays"
DEAD_LETTER_LABEL = "dead-letter"  # the dead-letter queue's `channel` label in /metrics
CONTENT_TYPE = "application/json"
MAX_RETRY_DELAY = 60.0  # seconds a failed delivery waits, at most, before it is rejected
CLOSE_TIMEOUT = 10.0
OPERATION_TIMEOUT = 10.0
_RETRY_PAUSE = 0.5
_TRANSIENT = (*CONNECTION_EXCEPTIONS, TimeoutError)
_QUORUM = {"x-queue-type": "quorum"}


def safe_url(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, location = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:******@{location}"))


class RabbitWorkQueue:
    """The scale-out work queue. Use `async with`, or `start()` ... `close()`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "partner-gateway",
        delivery_limit: int = 5,
        retry_delay: float = 1.0,
        reconnect_interval: float = 1.0,
        publish_timeout: float = 30.0,
        connection_name: str | None = None,
        channels: Sequence[str] = CHANNELS,
    ) -> None:
        if not prefix or any(ch.isspace() for ch in prefix):
            raise ValueError(f"prefix must be a non-empty name without spaces, not {prefix!r}")
        if delivery_limit < 0:
            raise ValueError("delivery_limit must be >= 0")
        self._url = url
        self._channels = tuple(channels)  # one queue each (the registry's channels)
        self._prefix = prefix
        self._delivery_limit = delivery_limit
        self._retry_delay = retry_delay
        self._reconnect_interval = reconnect_interval
        self._publish_timeout = publish_timeout
        self._connection_name = connection_name or f"{prefix} work queue"
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractRobustChannel | None = None
        self._start_lock = asyncio.Lock()
        self._closing = asyncio.Event()
        self._consumers = 0
        self._no_consumers = asyncio.Event()
        self._no_consumers.set()

    def __repr__(self) -> str:
        return f"<RabbitWorkQueue {safe_url(self._url)} prefix={self._prefix!r}>"

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self._prefix}.dead-letter"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self._prefix}.dead"

    def queue_name(self, channel: str) -> str:
        """The queue of a channel ("SMS" or "sms" -> "<prefix>.dispatch.sms")."""
        value = channel.upper()
        if value not in self._channels:
            raise ValueError(f"unknown channel {channel!r}; expected one of {', '.join(self._channels)}")
        return f"{self._prefix}.dispatch.{value.lower()}"

    async def __aenter__(self) -> RabbitWorkQueue:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect and declare the topology (idempotent; the other methods call it too)."""
        async with self._start_lock:
            if self._closing.is_set():
                raise WorkQueueError("the work queue is closed")
            if self._connection is not None:
                return
            try:
                connection = await aio_pika.connect_robust(
                    self._url,
                    timeout=OPERATION_TIMEOUT,
                    reconnect_interval=self._reconnect_interval,
                    client_properties={"connection_name": self._connection_name},
                )
            except _TRANSIENT as exc:
                raise WorkQueueUnavailable(
                    f"cannot connect to RabbitMQ at {safe_url(self._url)}: {type(exc).__name__}: {exc}"
                ) from None
            try:
                publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
                await self._declare_topology(publisher)
            except ChannelPreconditionFailed as exc:
                await connection.close()
                raise WorkQueueError(
                    f"RabbitMQ refused the topology of {self._prefix!r} ({exc}); a queue or exchange "
                    "exists with other arguments, e.g. another delivery_limit: apply it with a policy "
                    "or recreate the queues"
                ) from None
            except BaseException:
                await connection.close()
                raise
            connection.reconnect_callbacks.add(self._on_reconnect)
            self._connection, self._publisher = connection, publisher
            logger.info("Work queue %r connected to %s", self._prefix, safe_url(self._url))

    @property
    def connected(self) -> bool:
        """Whether the connection to the broker is up now (not before `start`, nor while the
        robust connection is re-establishing itself)."""
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    def _on_reconnect(self, _connection: AbstractRobustConnection | None, /) -> None:
        logger.warning("Work queue %r reconnected to %s", self._prefix, safe_url(self._url))

    def _work_queue_arguments(self) -> dict[str, Any]:
        return {
            **_QUORUM,
            "x-delivery-limit": self._delivery_limit,
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",  # required by at-least-once dead-lettering
        }

    async def _declare_topology(self, channel: AbstractRobustChannel) -> None:
        fanout = aio_pika.ExchangeType.FANOUT
        exchange = await channel.declare_exchange(self.dead_letter_exchange, fanout, durable=True)
        dead = await channel.declare_queue(self.dead_letter_queue, durable=True, arguments=_QUORUM)
        await dead.bind(exchange)
        arguments = self._work_queue_arguments()
        for name in self._channels:
            await channel.declare_queue(self.queue_name(name), durable=True, arguments=arguments)

    async def _ready(self) -> tuple[AbstractRobustConnection, AbstractRobustChannel]:
        await self.start()
        if self._connection is None or self._publisher is None:
            raise WorkQueueError("the work queue is closed")
        return self._connection, self._publisher

    def _message(self, body: bytes, headers: dict[str, Any] | None = None) -> aio_pika.Message:
        return aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type=CONTENT_TYPE,
            message_id=uuid.uuid4().hex,  # unique per publish: aiormq matches returns by it
            timestamp=datetime.now(UTC),
            app_id=self._prefix,
            headers=headers,
        )

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, items: Sequence[WorkItem]) -> None:
        """Publish `items`; return once the broker has confirmed every one of them.

        Items not confirmed because the connection dropped (or the broker nacked them) are sent
        again once it is back, so an item may reach its queue twice. Raises
        `WorkQueueUnavailable` if they are still unconfirmed after `publish_timeout` seconds.
        """
        if not items:
            return
        _, channel = await self._ready()
        deadline = asyncio.get_running_loop().time() + self._publish_timeout
        pending, retries = list(items), 0
        while pending:
            if self._closing.is_set():
                raise WorkQueueError("the work queue is closed")
            try:
                async with asyncio.timeout_at(deadline):
                    if retries:  # after a drop: wait until reconnected and the channel restored
                        await asyncio.sleep(_RETRY_PAUSE)
                        await channel.ready()
                    results = await asyncio.gather(
                        *(self._publish_one(channel, item) for item in pending), return_exceptions=True
                    )
            except TimeoutError:
                raise WorkQueueUnavailable(
                    f"RabbitMQ did not confirm {len(pending)} of {len(items)} work items "
                    f"within {self._publish_timeout:g} s"
                ) from None
            errors = [result for result in results if result is not None]
            for error in errors:
                if isinstance(error, PublishError):
                    raise WorkQueueError(f"RabbitMQ could not route a work item ({error}); queue deleted?")
                if not isinstance(error, (*_TRANSIENT, asyncio.CancelledError)):
                    raise error
            failed = [item for item, result in zip(pending, results, strict=True) if result is not None]
            if errors:
                level = logging.DEBUG if retries else logging.WARNING
                message = "%d of %d work items not confirmed (%r); sending them again when connected"
                logger.log(level, message, len(failed), len(items), errors[0])
            pending, retries = failed, retries + 1

    async def _publish_one(self, channel: AbstractChannel, item: WorkItem) -> None:
        await channel.default_exchange.publish(
            self._message(item.encode()), routing_key=self.queue_name(item.channel), mandatory=True
        )

    # -- consuming ----------------------------------------------------------------------------

    async def consume(
        self, channel: str, handler: Handler, *, prefetch: int, until: Awaitable[object] | None = None
    ) -> None:
        """Feed `channel`'s items to `handler` until cancelled (or until `close()`), or until
        `until` completes.

        Up to `prefetch` handlers run at once. On cancellation the running handlers are
        cancelled and their deliveries, never acknowledged, go back to the queue. When `until`
        completes the consumer is cancelled at the broker and the running handlers finish first:
        a pause, not a crash.
        """
        if prefetch < 1:
            raise ValueError("prefetch must be >= 1")
        queue_name = self.queue_name(channel)
        connection, _ = await self._ready()
        amqp_channel = await connection.channel(publisher_confirms=False)
        inflight: set[asyncio.Task[Any]] = set()
        self._consumers += 1
        self._no_consumers.clear()
        try:
            await amqp_channel.set_qos(prefetch_count=prefetch)
            queue = await amqp_channel.declare_queue(
                queue_name, durable=True, arguments=self._work_queue_arguments()
            )

            async def on_message(message: AbstractIncomingMessage) -> None:
                task = asyncio.current_task()
                if task is None:  # pragma: no cover - aio-pika runs every delivery in a task
                    raise RuntimeError("deliveries must run in a task")
                inflight.add(task)
                try:
                    await self._deliver(queue_name, message, handler)
                finally:
                    inflight.discard(task)

            tag = await queue.consume(on_message)
            logger.info("Consuming %s (prefetch %d)", queue_name, prefetch)
            if await _first_of(self._closing.wait(), until) == 1:
                logger.info("Pausing %s: letting %d running handlers finish", queue_name, len(inflight))
                with contextlib.suppress(*_TRANSIENT):
                    await queue.cancel(tag)
                await asyncio.gather(*inflight, return_exceptions=True)
        finally:
            for task in inflight:
                task.cancel()
            with contextlib.suppress(*_TRANSIENT):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await asyncio.gather(*inflight, return_exceptions=True)
                    await amqp_channel.close()
            self._consumers -= 1
            if not self._consumers:
                self._no_consumers.set()
            logger.info("Stopped consuming %s", queue_name)

    async def _deliver(self, queue_name: str, message: AbstractIncomingMessage, handler: Handler) -> None:
        try:
            item = WorkItem.decode(message.body, self._channels)
        except WorkItemDecodeError as exc:
            logger.error("Undecodable delivery on %s sent to %s: %s", queue_name, self.dead_letter_queue, exc)
            await _settle(message.reject(requeue=False), "reject", queue_name)
            return
        try:
            await handler(item)
        except Exception:
            count = _int_header(message.headers, "x-delivery-count")
            last = count >= self._delivery_limit
            outcome = "dead-lettering it" if last else "it will be redelivered"
            logger.warning(
                "Handler failed for outbox item %d on %s (delivery %d of %d); %s",
                *(item.outbox_id, queue_name, count + 1, self._delivery_limit + 1, outcome),
                exc_info=True,
            )
            if not last:
                await asyncio.sleep(min(self._retry_delay * 2**count, MAX_RETRY_DELAY))
            await _settle(message.nack(requeue=True), "nack", queue_name)
            return
        await _settle(message.ack(), "ack", queue_name)

    # -- dead letters -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _dead_letter_session(self) -> AsyncIterator[tuple[AbstractChannel, AbstractQueue]]:
        """A private channel holding what it takes from the DLQ; closing it returns the rest."""
        connection, _ = await self._ready()
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            queue = await channel.declare_queue(
                self.dead_letter_queue, durable=True, arguments=_QUORUM, robust=False
            )
            yield channel, queue
        finally:
            with contextlib.suppress(*_TRANSIENT):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await channel.close()

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Up to `limit` dead letters, oldest first; they stay in the dead-letter queue."""
        async with self._dead_letter_session() as (_, queue):
            return [_dead_letter(message, self._channels) async for message in _take(queue, limit)]

    async def replay_dead_letters(self, limit: int = 100) -> int:
        """Move up to `limit` dead letters back to their channel's queue; returns how many.

        Each is confirmed in its queue before it leaves the dead-letter queue. Payloads that do
        not decode stay where they are (they would only come straight back).
        """
        replayed = 0
        async with self._dead_letter_session() as (channel, queue):
            async for message in _take(queue, limit):
                letter = _dead_letter(message, self._channels)
                if letter.item is None:
                    logger.warning("Dead letter from %s not replayed: %s", letter.queue, letter.error)
                    continue
                headers = {REPLAYS_HEADER: letter.replays + 1}
                await channel.default_exchange.publish(
                    self._message(message.body, headers),
                    routing_key=self.queue_name(letter.item.channel),
                    mandatory=True,
                    timeout=OPERATION_TIMEOUT,
                )
                await message.ack()
                replayed += 1
        if replayed:
            logger.info("Replayed %d dead letters", replayed)
        return replayed

    # -- depths -------------------------------------------------------------------------------

    async def depths(self) -> dict[str, int]:
        """Messages ready in each channel's queue, and in the dead-letter queue ("dead-letter"):
        passive declarations, on a channel of their own so a refusal closes only that one."""
        connection, _ = await self._ready()
        channel = await connection.channel()
        try:
            names = {name: self.queue_name(name) for name in self._channels}
            names[DEAD_LETTER_LABEL] = self.dead_letter_queue
            counts = {}
            for label, queue_name in names.items():
                queue = await channel.declare_queue(queue_name, passive=True, robust=False)
                counts[label] = int(queue.declaration_result.message_count or 0)
            return counts
        finally:
            with contextlib.suppress(*_TRANSIENT):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await channel.close()

    async def read_depths(self) -> None:
        """Set /metrics' queue gauges (a scrape source, observability/scrape.py)."""
        for label, count in (await self.depths()).items():
            QUEUE_MESSAGES.labels(label).set(count)

    # -- closing ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every consumer (unacknowledged deliveries go back to their queue), disconnect."""
        self._closing.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._no_consumers.wait()
        connection, self._connection, self._publisher = self._connection, None, None
        if connection is not None:
            await connection.close()


async def _first_of(closing: Awaitable[object], until: Awaitable[object] | None) -> int:
    """Wait for `closing` (0) or `until` (1), whichever completes first; cancel the other."""
    if until is None:
        await closing
        return 0
    waiters = [asyncio.ensure_future(closing), asyncio.ensure_future(until)]
    try:
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return 0 if waiters[0] in done else 1


async def _settle(operation: Any, what: str, queue_name: str) -> None:
    """Ack/nack/reject; if the channel is gone the broker redelivers, so that is only logged."""
    try:
        await operation
    except _TRANSIENT as exc:
        logger.warning(
            "Could not %s a delivery on %s (%r); it will be delivered again", what, queue_name, exc
        )


async def _take(queue: AbstractQueue, limit: int) -> AsyncIterator[AbstractIncomingMessage]:
    """Up to `limit` messages, unacknowledged: held by the channel until acked or it closes."""
    for _ in range(limit):
        message = await queue.get(no_ack=False, fail=False, timeout=OPERATION_TIMEOUT)
        if message is None:
            return
        yield message


def _dead_letter(message: AbstractIncomingMessage, channels: Sequence[str]) -> DeadLetter:
    headers = message.headers or {}
    deaths = headers.get("x-death")
    latest: dict[str, Any] = {}
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        latest = deaths[0]  # the broker keeps the most recent death first
    try:
        item: WorkItem | None = WorkItem.decode(message.body, channels)
        error = None
    except WorkItemDecodeError as exc:
        item, error = None, str(exc)
    died_at = latest.get("time")
    return DeadLetter(
        payload=message.body,
        item=item,
        error=error,
        queue=_text(latest.get("queue")) or _text(headers.get("x-first-death-queue")),
        reason=_text(latest.get("reason")) or _text(headers.get("x-first-death-reason")) or "unknown",
        death_count=_int_header(latest, "count"),
        replays=_int_header(headers, REPLAYS_HEADER),
        dead_lettered_at=died_at if isinstance(died_at, datetime) else None,
    )


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _int_header(headers: Any, name: str) -> int:
    value = headers.get(name) if isinstance(headers, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
