"""Two processes applying reports to one message at once never lose either.

In a cluster, the sent and delivered webhooks of one WhatsApp message can reach two API
processes together, and the expiry sweep can run in one worker while a receipt arrives at
another. Each transaction reads the message, decides with the lifecycle and writes the result.
Under READ COMMITTED, a second transaction that read before the first committed would decide on
the stale status and overwrite the first's (a DELIVERED message shown as RECEIVED or EXPIRED).
The reads therefore lock the rows they will change, so the second waits and decides on what the
first wrote.

Each test holds the first transaction open, starts the second, waits until PostgreSQL reports it
waiting for a lock, and only then commits the first: the interleaving is forced, not hoped for.
On SQLite the one writer's transactions begin IMMEDIATE and run one at a time: there the test
checks that the second has not finished while the first is open, and the same outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.reports import GATEWAY, StatusReport
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import delivery
from partner_gateway.store.tables import message_parts, messages
from support import seed

T0 = 1_795_000_000_000
PROVIDER = "whatsapp"
LOCK_WAIT_TIMEOUT = 10.0

Apply = Callable[[AsyncConnection, str, str], Awaitable[object]]
"""A status change: (connection, message id, the provider's key for it) -> its outcome."""


def provider_report(status: DeliveryStatus, raw: str) -> Apply:
    async def apply(connection: AsyncConnection, _message_id: str, key: str) -> object:
        report = StatusReport(
            provider=PROVIDER,
            provider_key=key,
            status=status,
            raw_state=raw,
            description=f"provider says {raw}",
            occurred_at=T0 + 1_000,
            dedup_key=f"{key}:{raw}",
        )
        return await delivery.apply_provider_report(connection, report, T0 + 2_000)

    return apply


async def expire(connection: AsyncConnection, message_id: str, _key: str) -> object:
    report = gateway_report(
        message_id,
        DeliveryStatus.EXPIRED,
        "No receipt within the validity",
        "EXPIRED",
        f"{message_id}:expired",
    )
    return await delivery.apply_gateway_report(connection, report, T0 + 3_000)


def gateway_report(
    message_id: str, status: DeliveryStatus, description: str, raw: str, dedup: str, at: int = T0 + 3_000
) -> StatusReport:
    """A status the gateway decides (at `at`, as the dispatcher's would be)."""
    return StatusReport(GATEWAY, status, raw, description, at, dedup, message_id=message_id)


delivered = provider_report(DeliveryStatus.DELIVERED, "delivered")
received = provider_report(DeliveryStatus.RECEIVED, "sent")


async def sent_message(runtime: Runtime) -> tuple[str, str]:
    """A WhatsApp message the provider accepted (SENT, one part); its id and the provider's key."""
    [message_id] = await seed(runtime, "cmp_a", [T0], channel="WHATSAPP")
    key = f"wamid.{message_id}"
    async with runtime.database.write() as connection:
        await delivery.record_parts(
            connection, message_id, PROVIDER, [delivery.PartRecord(1, 1, key, key)], T0
        )
        report = gateway_report(
            message_id, DeliveryStatus.SENT, "Accepted by the provider", "SUBMITTED", "s", T0
        )
        await delivery.apply_gateway_report(connection, report, T0)
    return message_id, key


async def wait_until_the_second_waits(runtime: Runtime, second: asyncio.Task[None]) -> None:
    """Return once the second transaction waits for the first; fail after 10 s."""
    if runtime.database.dialect == "sqlite":
        await asyncio.sleep(0.2)
        assert not second.done(), "a second write transaction ran beside an open one"
        return
    url = runtime.settings.resolved_database_url().replace("postgresql+asyncpg", "postgresql")
    admin = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + LOCK_WAIT_TIMEOUT
        while time.monotonic() < deadline:
            waiting = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            if waiting:
                return
            await asyncio.sleep(0.01)
    finally:
        await admin.close()
    pytest.fail("the second transaction never waited for the first one's lock")


async def race(runtime: Runtime, first: Apply, second: Apply) -> tuple[str, str]:
    """`first` applied and not yet committed, `second` started and waiting; then both commit.
    The message's and its part's status afterwards."""
    message_id, key = await sent_message(runtime)
    async with runtime.database.write() as connection:
        await first(connection, message_id, key)

        async def then() -> None:
            async with runtime.database.write() as other:
                await second(other, message_id, key)

        second_task = asyncio.create_task(then())
        await wait_until_the_second_waits(runtime, second_task)
    await asyncio.wait_for(second_task, LOCK_WAIT_TIMEOUT)
    async with runtime.database.read() as connection:
        message_status = (
            await connection.execute(select(messages.c.status).where(messages.c.id == message_id))
        ).scalar_one()
        part_status = (
            await connection.execute(
                select(message_parts.c.status).where(message_parts.c.message_id == message_id)
            )
        ).scalar_one()
    return message_status, part_status


async def test_a_lesser_report_read_before_a_delivery_committed_does_not_undo_it(runtime: Runtime) -> None:
    assert await race(runtime, delivered, received) == ("DELIVERED", "DELIVERED")


async def test_a_delivery_read_before_a_lesser_report_committed_still_wins(runtime: Runtime) -> None:
    assert await race(runtime, received, delivered) == ("DELIVERED", "DELIVERED")


async def test_the_expiry_sweep_does_not_overwrite_a_delivery_committed_meanwhile(runtime: Runtime) -> None:
    message_status, _ = await race(runtime, delivered, expire)
    assert message_status == "DELIVERED"


async def test_a_delivery_after_an_expiry_committed_meanwhile_is_shown(runtime: Runtime) -> None:
    message_status, _ = await race(runtime, expire, delivered)
    assert message_status == "DELIVERED"
