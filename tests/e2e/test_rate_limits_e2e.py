"""Rate limits in real processes: two API processes on PostgreSQL share one company's limit (the
total within 20 % of one process's), and `company limits` changes apply in running processes
without a restart (SPEC §2), on the embedded gateway too."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from e2e_support import Gateway
from support import BASE, cli, free_port

pytestmark = pytest.mark.slow

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
UNKNOWN = f"{BASE}/messages/status/msg_01JDX3Q7T0Z5K9R3B2M8N4P6W1?channel=SMS"
RATE, BURST, SECONDS = 40, 40, 8.0


@pytest.fixture
async def shared_store() -> AsyncIterator[str]:
    """A fresh PostgreSQL database: the limit is shared through it whatever store the suite runs on."""
    name = f"pgw_limits_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def wait_healthy(port: int) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health", timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"API on {port} did not start")


async def paced_reads(client: httpx.AsyncClient, per_second: float, seconds: float) -> dict[int, int]:
    """Look-ups at a steady pace (an open loop, as many partners' clients are): answers by status."""
    statuses: dict[int, int] = {}
    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * per_second) + 1 - sent
        for _ in range(due):
            answer = await client.get(UNKNOWN)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            sent += 1
        await asyncio.sleep(0.002)
    return statuses


async def test_two_api_processes_share_one_company_s_limit(tmp_path: Path, shared_store: str) -> None:
    env = {
        "PARTNER_GATEWAY_DATABASE_URL": shared_store,
        "PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "PARTNER_GATEWAY_LOG_LEVEL": "WARNING",
        "PARTNER_GATEWAY_ROLE": "api",
    }
    created = json.loads((await asyncio.to_thread(cli, env, "company", "create", "Shared", "--json")).stdout)
    set_limit = await asyncio.to_thread(
        cli, env, "company", "limits", created["companyId"], "--reads", f"{RATE}/{BURST}", "--json"
    )
    assert json.loads(set_limit.stdout)["reads"] == {"perSecond": RATE, "burst": BURST, "default": False}
    ports = [free_port(), free_port()]
    log = (tmp_path / "apis.log").open("w")
    processes = [
        await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "partner-gateway"),
            "serve",
            env={**os.environ, **env, "PARTNER_GATEWAY_PORT": str(port)},
            stdout=log,
            stderr=log,
        )
        for port in ports
    ]
    headers = {"Authorization": f"Bearer {created['apiKey']}"}
    clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) for port in ports]
    try:
        for port in ports:
            await wait_healthy(port)
        # Three times the limit, offered evenly to both processes.
        per_process = await asyncio.gather(*(paced_reads(client, 1.5 * RATE, SECONDS) for client in clients))
        admitted = sum(statuses.get(404, 0) for statuses in per_process)
        refused = sum(statuses.get(429, 0) for statuses in per_process)
        assert all(set(statuses) <= {404, 429} for statuses in per_process), per_process
        one_process = BURST + RATE * SECONDS  # what one bucket admits in that time
        print(f"admitted {admitted} (one process: {one_process:g}), refused {refused}: {per_process}")
        assert abs(admitted - one_process) <= 0.2 * one_process, (admitted, refused, per_process)
        assert all(statuses.get(404, 0) > RATE for statuses in per_process)  # both served a share

        # A change applies in both running processes within the refresh period (2 s).
        await asyncio.to_thread(cli, env, "company", "limits", created["companyId"], "--reads", "500/7")
        changed_at = time.monotonic()
        seen: dict[int, float] = {}
        while len(seen) < 2 and time.monotonic() - changed_at < 10:
            for number, client in enumerate(clients):
                answer = await client.get(UNKNOWN)
                if answer.headers.get("ratelimit-policy") == '"reads";q=7;w=1' and number not in seen:
                    seen[number] = time.monotonic() - changed_at
            await asyncio.sleep(0.1)
        assert sorted(seen) == [0, 1], seen
        assert max(seen.values()) <= 5, seen  # SPEC §2: within 5 seconds
    finally:
        for client in clients:
            await client.aclose()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
        log.close()


def test_company_limits_changes_the_running_embedded_gateway(gateway: Gateway) -> None:
    """`serve` (SQLite, or the suite's PostgreSQL) and the CLI beside it, as an operator runs them."""
    with httpx.Client(base_url=gateway.url, headers=gateway.headers) as client:
        first = client.get(UNKNOWN)
        assert first.headers["ratelimit-policy"] == '"reads";q=2000;w=2'  # the defaults: 1,000 a second
        shown = json.loads(cli(gateway.env, "company", "limits", gateway.company_id, "--json").stdout)
        assert shown["reads"] == {"perSecond": 1000.0, "burst": 2000, "default": True}
        assert shown["sends"] == {"perSecond": 100.0, "burst": 200, "default": True}
        cli(gateway.env, "company", "limits", gateway.company_id, "--reads-per-second", "1")
        deadline = time.monotonic() + 10
        while client.get(UNKNOWN).headers["ratelimit-policy"] != '"reads";q=2;w=2':
            assert time.monotonic() < deadline, "the change did not apply"
            time.sleep(0.1)
        answers = [client.get(UNKNOWN) for _ in range(5)]
        refused = [answer for answer in answers if answer.status_code == 429]
        assert refused, [answer.status_code for answer in answers]
        assert refused[0].headers["retry-after"] == "1"
        assert refused[0].json()["type"].endswith("/rate-limited")
        cli(gateway.env, "company", "limits", gateway.company_id, "--reset")
        deadline = time.monotonic() + 10
        while client.get(UNKNOWN).headers.get("ratelimit-policy") != '"reads";q=2000;w=2':
            assert time.monotonic() < deadline, "the reset did not apply"
            time.sleep(0.2)
