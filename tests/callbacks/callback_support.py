"""Helpers for the sender's tests: messages with callbacks, a sender with short schedules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.callbacks.listener import CallbackReceiver
from partner_gateway.callbacks.sender import CallbackSender
from partner_gateway.callbacks.urls import CallbackUrlChecker, Resolver, system_resolver
from partner_gateway.domain.reports import GATEWAY, StatusReport
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.observability.metrics import callback_attempted
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import callback_deliveries, delivery
from partner_gateway.store.repositories.callback_settings import CallbackSettingsRepository
from partner_gateway.store.tables import messages
from support import seed

StartReceiver = Callable[..., Awaitable[tuple[CallbackReceiver, str]]]
"""The `start_receiver` fixture's type (tests/callbacks/conftest.py)."""

FAST = {
    "callback_allow_private_networks": True,
    "callback_timeout_seconds": 2.0,
    "callback_retry_first_seconds": 0.1,
    "callback_retry_max_delay_seconds": 0.4,
    "callback_retry_window_seconds": 3600.0,
    "callback_poll_seconds": 0.02,
}


def sender_for(
    runtime: Runtime,
    *,
    allow_private: bool = True,
    resolve: Resolver = system_resolver,
    on_attempt: Callable[[str, float], None] = callback_attempted,
    **overrides: object,
) -> CallbackSender:
    settings = runtime.settings.model_copy(update={**FAST, **overrides})
    urls = CallbackUrlChecker(allow_private=allow_private, resolve=resolve, ttl_seconds=0.0)
    return CallbackSender(
        settings, runtime.database, runtime.writes, urls, runtime.callback_secrets, on_attempt=on_attempt
    )


async def message_with_changes(
    runtime: Runtime,
    company_id: str,
    url: str | None,
    statuses: Sequence[DeliveryStatus] = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED),
    *,
    channel: str = "SMS",
) -> str:
    """A stored message (with its own callbackUrl, or None: the company's default) that went
    through `statuses`, one batch each."""
    [message_id] = await seed(runtime, company_id, [now_ms()], channel=channel)
    async with runtime.database.write() as connection:
        await connection.execute(update(messages).where(messages.c.id == message_id).values(callback_url=url))
    for status in statuses:
        report = StatusReport(
            GATEWAY, status, status.value, f"now {status.value}", now_ms(), f"{message_id}:{status.value}",
            message_id=message_id,
        )  # fmt: skip
        async with runtime.database.write() as connection:
            await delivery.apply_gateway_reports(connection, [report], now_ms())
    return message_id


async def delivered_in_store(connection: AsyncConnection) -> int:
    """Events the store holds delivered, read on `connection` (callback_deliveries.backlog)."""
    return (await callback_deliveries.backlog(connection)).get(callback_deliveries.DELIVERED, 0)


async def secrets_of(runtime: Runtime, company_id: str) -> tuple[str, ...]:
    async with runtime.database.read() as connection:
        return await CallbackSettingsRepository(connection, runtime.callback_secrets).signing_secrets(
            company_id, now_ms()
        )


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for `condition` (a test's bound against a hang, not a speed check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
