"""Faults survived (issue 16): the broker goes away and comes back, and readiness says so.

Restarting the shared RabbitMQ would break other runs on this machine (the broker-restart test of
tests/e2e/test_cluster.py does it, run by the lead alone), so the processes reach RabbitMQ through
a TCP proxy the test controls (tcp_proxy.py), in a virtual host of their own: `refuse()` resets
their connections and refuses new ones, as a broker restarting does. Two processes with a broker:
the gateway with API and worker in one (role all), whose /ready is on the API's port, and a
worker (role worker), whose /ready is on its ops port.

- while the broker is away, both /ready answer 503 problems naming the broker; the API goes on
  accepting (the outbox keeps the work);
- once it is back, both reconnect by themselves and are ready again;
- what was accepted meanwhile is delivered, none twice; SIGTERM: both exit 0.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from gateway_runs import fresh_database, fresh_vhost, start_gateway, stop_gateway, wait_all_final

from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator
from support import BASE, cli, free_port
from tcp_proxy import TcpProxy


async def ready(client: httpx.AsyncClient, port: int) -> tuple[int, list[str]]:
    response = await client.get(f"http://127.0.0.1:{port}/ready", timeout=5)
    failed = (
        [error["field"] for error in response.json().get("errors", [])] if response.status_code != 200 else []
    )
    return response.status_code, failed


async def broker_up(client: httpx.AsyncClient, port: int) -> str:
    """The partner_gateway_broker_up sample of the process's /metrics."""
    page = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
    return next(
        line.split()[1] for line in page.splitlines() if line.startswith("partner_gateway_broker_up ")
    )


async def wait_ready_state(client: httpx.AsyncClient, port: int, status: int, within: float) -> list[str]:
    deadline = time.monotonic() + within
    while True:
        answer, failed = await ready(client, port)
        if answer == status or time.monotonic() > deadline:
            assert answer == status, (port, answer, failed)
            return failed
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_readiness_names_the_broker_while_it_is_away(tmp_path: Path) -> None:
    smsc = SmscSimulator(
        SmscConfig(port=0, system_id="broker", password="brokerpw", max_receipt_resends=1000)
    )
    smsc_port = await smsc.start()
    proxy = TcpProxy("127.0.0.1", 5672)
    proxy_port = await proxy.start()
    api_port, ops_port = free_port(), free_port()
    carriers = [{"name": "broker", "host": "127.0.0.1", "port": smsc_port, "system_id": "broker",
                 "password": "brokerpw", "window": 20, "binds": 2}]  # fmt: skip
    processes = []
    try:
        async with fresh_database() as database, fresh_vhost() as vhost:
            env = {
                "PARTNER_GATEWAY_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{database}",
                "PARTNER_GATEWAY_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{proxy_port}/{vhost}",
                "PARTNER_GATEWAY_SMPP_CARRIERS": json.dumps(carriers),
                "PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data"),
                "PARTNER_GATEWAY_PORT": str(api_port),
                "PARTNER_GATEWAY_OPS_PORT": str(ops_port),
                "PARTNER_GATEWAY_DISPATCH_POLL_SECONDS": "0.1",
                "PARTNER_GATEWAY_DRAIN_GRACE_SECONDS": "0",
                "PARTNER_GATEWAY_LOG_LEVEL": "WARNING",
            }
            created = await asyncio.to_thread(cli, env, "company", "create", "Broker", "--json")
            key = json.loads(created.stdout)["apiKey"]
            log = tmp_path / "serve.log"
            processes.append(await start_gateway(env, log, role="all"))
            processes.append(await start_gateway(env, log, role="worker"))
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(headers=headers) as client:
                for port in (api_port, ops_port):
                    await wait_ready_state(client, port, 200, within=15)
                up_before = [await broker_up(client, port) for port in (api_port, ops_port)]

                await proxy.refuse()
                away = [await wait_ready_state(client, port, 503, within=10) for port in (api_port, ops_port)]
                up_away = [await broker_up(client, port) for port in (api_port, ops_port)]
                ids = []
                for number in range(20):  # accepted all the same: the outbox keeps them
                    sent = await client.post(
                        f"http://127.0.0.1:{api_port}{BASE}/sms/messages",
                        json={
                            "to": f"+491511234{number:02d}05",
                            "text": f"while the broker is away {number}",
                        },
                    )
                    assert sent.status_code == 202, sent.text
                    ids.append(sent.json()["customerMessageId"])

                await proxy.restore()
                for port in (api_port, ops_port):
                    await wait_ready_state(client, port, 200, within=30)
                up_after = [await broker_up(client, port) for port in (api_port, ops_port)]
            found = await wait_all_final(f"http://127.0.0.1:{api_port}", key, ids, within=60)
            exit_codes = [await stop_gateway(process) for process in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await proxy.stop()
        await smsc.stop()
    assert away == [["broker"], ["broker"]], away
    assert (up_before, up_away, up_after) == (["1.0"] * 2, ["0.0"] * 2, ["1.0"] * 2)
    assert all(item["deliveryStatus"] == "DELIVERED" for item in found.values()), found
    assert len(found) == len(ids)
    assert smsc.stats.duplicates == 0
    assert exit_codes == [0, 0], log.read_text()[-3000:]
