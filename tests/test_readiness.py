"""Readiness checks: run together, each bounded in time, a failure's words kept."""

from __future__ import annotations

import asyncio
import time

import pytest

from partner_gateway import readiness
from partner_gateway.readiness import Readiness


async def test_checks_run_together_and_a_hanging_one_counts_as_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readiness, "CHECK_TIMEOUT_SECONDS", 0.2)
    checks = Readiness()

    async def fine() -> None:
        return None

    async def hangs() -> None:
        await asyncio.sleep(60)

    async def says() -> str:
        return "not connected to RabbitMQ (reconnecting)"

    async def raises() -> None:
        raise OSError("disk I/O error\nsecond line")

    for name, check in (("store", fine), ("slow", hangs), ("broker", says), ("disk", raises)):
        checks.add(name, check)
    started = time.monotonic()
    problems = await checks.problems()
    assert time.monotonic() - started < 2  # together, not one after the other
    assert problems == {
        "slow": "no answer within 0.2 s",
        "broker": "not connected to RabbitMQ (reconnecting)",
        "disk": "OSError: disk I/O error",
    }
    assert checks.names == ["store", "slow", "broker", "disk"]
