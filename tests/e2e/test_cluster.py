"""Scale-out on one machine: two API and two worker processes on PostgreSQL and RabbitMQ.

10,000 SMS through two carriers, each an SMSC simulator (in this test's process, so its counters
are the carrier's own view), with a route splitting every number between them; during the run one
worker is killed with SIGKILL and RabbitMQ is restarted. Every message must reach a final status,
no carrier may see a duplicate, and the split must hold.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator
from support import BASE, cli, free_port

MESSAGES = 10_000
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture
async def cluster_store() -> AsyncIterator[tuple[str, str]]:
    name = f"pgw_cluster_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await asyncio.to_thread(rabbitmqctl, "add_vhost", name)
    await asyncio.to_thread(rabbitmqctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield (
            f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}",
            f"amqp://guest:guest@127.0.0.1:5672/{name}",
        )
    finally:
        await asyncio.to_thread(rabbitmqctl, "start_app")  # in case the test stopped inside the restart
        await asyncio.to_thread(rabbitmqctl, "delete_vhost", name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def spawn(env: dict[str, str], role: str, log: Path) -> asyncio.subprocess.Process:
    with log.open("a") as output:
        return await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "partner-gateway"), "serve", "--role", role,
            env={**os.environ, **env}, stdout=output, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip


async def wait_healthy(port: int) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health", timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"API on {port} did not start")


FINAL = {"DELIVERED", "ERROR", "EXPIRED", "UNKNOWN"}


def is_final(item: dict[str, str]) -> bool:
    """SENT is not final (its receipt is still to come); UNKNOWN is, unless still queued."""
    queued = item["deliveryStatusDescription"].startswith(("Accepted, queued", "Will retry"))
    return item["deliveryStatus"] in FINAL and not (item["deliveryStatus"] == "UNKNOWN" and queued)


async def test_two_apis_two_workers_worker_killed_and_broker_restarted(
    tmp_path: Path, cluster_store: tuple[str, str]
) -> None:
    database_url, amqp_url = cluster_store
    # Two carriers, each its own SMSC, and a route splitting every number between them.
    smscs = [
        SmscSimulator(
            SmscConfig(
                port=0,
                system_id="cluster",
                password="clusterp",
                receipt_delay_min_seconds=0.05,
                receipt_delay_max_seconds=0.3,
                max_receipt_resends=50,  # carriers retry unacknowledged receipts for hours, not 3 times
            )
        )
        for _ in range(2)
    ]
    ports = [await smsc.start() for smsc in smscs]
    carriers = [{"name": f"cluster-{name}", "host": "127.0.0.1", "port": port, "system_id": "cluster",
                 "password": "clusterp", "window": 50, "throughput_per_second": 1000,
                 "binds": 2}  # a cluster-wide total: one each, both for the survivor
                for name, port in zip("ab", ports, strict=True)]  # fmt: skip
    routes = [{"prefix": "", "split": {"cluster-a": 50, "cluster-b": 50}}]
    base_env = {
        "PARTNER_GATEWAY_DATABASE_URL": database_url,
        "PARTNER_GATEWAY_AMQP_URL": amqp_url,
        "PARTNER_GATEWAY_SMPP_CARRIERS": json.dumps(carriers),
        "PARTNER_GATEWAY_SMS_ROUTES": json.dumps(routes),
        "PARTNER_GATEWAY_DISPATCH_LEASE_SECONDS": "10",
        "PARTNER_GATEWAY_DISPATCH_POLL_SECONDS": "0.1",
        "PARTNER_GATEWAY_SMPP_BIND_LEASE_SECONDS": "6",
        "PARTNER_GATEWAY_LOG_LEVEL": "WARNING",
        # One company sends far faster than its default limit: what is tested is crash safety.
        "PARTNER_GATEWAY_RATE_LIMIT_ENABLED": "false",
        "PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data"),
    }
    key = json.loads(
        (await asyncio.to_thread(cli, base_env, "company", "create", "Cluster", "--json")).stdout
    )["apiKey"]
    api_ports = [free_port(), free_port()]
    log = tmp_path / "cluster.log"
    processes: dict[str, asyncio.subprocess.Process] = {}
    try:
        for number, port in enumerate(api_ports):
            processes[f"api{number}"] = await spawn(
                {**base_env, "PARTNER_GATEWAY_PORT": str(port)}, "api", log
            )
        for number in range(2):
            processes[f"worker{number}"] = await spawn(base_env, "worker", log)
        for port in api_ports:
            await wait_healthy(port)

        headers = {"Authorization": f"Bearer {key}"}
        clients = [
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60)
            for port in api_ports
        ]
        ids: list[str] = []
        semaphore = asyncio.Semaphore(64)

        async def send(number: int) -> None:
            async with semaphore:
                response = await clients[number % 2].post(
                    f"{BASE}/sms/messages",
                    json={"to": f"+4915{number:07d}{number % 90:02d}", "text": f"cluster message #{number}"},
                )
                assert response.status_code == 202, response.text
                ids.append(response.json()["customerMessageId"])

        started = time.monotonic()
        sending = asyncio.gather(*(send(n) for n in range(MESSAGES)))

        def submits() -> int:
            return sum(smsc.stats.submits for smsc in smscs)

        while submits() < MESSAGES // 5 and time.monotonic() - started < 120:
            await asyncio.sleep(0.05)
        processes["worker0"].send_signal(signal.SIGKILL)
        await processes["worker0"].wait()
        killed_at = submits()
        while submits() < MESSAGES // 2 and time.monotonic() - started < 180:
            await asyncio.sleep(0.05)
        restart_at = submits()
        await asyncio.to_thread(rabbitmqctl, "stop_app")
        await asyncio.sleep(1)
        await asyncio.to_thread(rabbitmqctl, "start_app")
        await sending
        accepted_seconds = time.monotonic() - started

        deadline = time.monotonic() + 300
        items: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            items = []
            for start in range(0, len(ids), 5000):
                response = await clients[0].post(
                    f"{BASE}/messages/status/query", json={"channel": "SMS", "ids": ids[start : start + 5000]}
                )
                items += response.json()
            if len(items) == len(ids) and all(is_final(item) for item in items):
                break
            await asyncio.sleep(1)
        elapsed = time.monotonic() - started
        for client in clients:
            await client.aclose()
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            if process.returncode is None:
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()
        for smsc in smscs:
            await smsc.stop()

    statuses = [item["deliveryStatus"] for item in items]
    report = {
        "accepted": len(ids),
        "carrier_submits": [smsc.stats.submits for smsc in smscs],
        "carrier_duplicates": [smsc.stats.duplicates for smsc in smscs],
        "receipts_resent": [smsc.stats.receipts_resent for smsc in smscs],
        "receipts_abandoned": [smsc.stats.receipts_abandoned for smsc in smscs],
        "worker_killed_at_submits": killed_at,
        "broker_restarted_at_submits": restart_at,
        "statuses": {status: statuses.count(status) for status in sorted(set(statuses))},
        "seconds_to_accept_all": round(accepted_seconds, 1),
        "seconds_to_final": round(elapsed, 1),
    }
    print("cluster test:", json.dumps(report))
    assert len(ids) == MESSAGES
    assert len(items) == MESSAGES, f"messages missing: {report} {log.read_text()[-3000:]}"
    assert all(is_final(item) for item in items), report
    assert [smsc.stats.duplicates for smsc in smscs] == [0, 0], report
    # The split holds through the kill and the broker's restart (a hash of each message's id).
    assert all(0.4 * MESSAGES < smsc.stats.submits < 0.6 * MESSAGES for smsc in smscs), report


async def test_a_worker_answers_health_and_ready_on_its_operations_port(
    tmp_path: Path, cluster_store: tuple[str, str]
) -> None:
    """A worker has no partner API; with PARTNER_GATEWAY_OPS_PORT it answers the probes, and is
    ready once its store and its broker are."""
    database_url, amqp_url = cluster_store
    port = free_port()
    env = {
        "PARTNER_GATEWAY_DATABASE_URL": database_url,
        "PARTNER_GATEWAY_AMQP_URL": amqp_url,
        "PARTNER_GATEWAY_OPS_PORT": str(port),
        "PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data"),
    }
    worker = await spawn(env, "worker", tmp_path / "worker.log")
    try:
        await wait_healthy(port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            ready = await client.get("/ready")
            partner_api = await client.get(f"{BASE}/messages/status/msg_x?channel=SMS")
        assert (ready.status_code, ready.json()) == (
            200,
            {"status": "ready", "checks": {"store": "ok", "broker": "ok"}},
        )
        assert partner_api.status_code == 404  # the probes only: no partner API on a worker
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), 30) == 0
