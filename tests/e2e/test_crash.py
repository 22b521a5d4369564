"""Kill the gateway with SIGKILL while 2,000 messages are in flight, start it again, and check
that every message reaches a final status and none was submitted twice.

The SMSC simulator runs in this test's process, so its counters (what it received, and how often
the same destination and text came twice) are the carrier's own view, unaffected by the crash.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator
from support import BASE, cli, free_port

MESSAGES = 2_000
FINAL = {"DELIVERED", "ERROR", "EXPIRED", "UNKNOWN"}


def is_final(item: dict[str, str]) -> bool:
    """UNKNOWN is final only when the gateway gave up on it, not while it is still queued."""
    queued = item["deliveryStatusDescription"].startswith(("Accepted, queued", "Will retry"))
    return item["deliveryStatus"] in FINAL and not (item["deliveryStatus"] == "UNKNOWN" and queued)


async def start_gateway(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("a") as output:  # the child keeps its own copy of the descriptor
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "partner-gateway"),
            "serve",
            env={**os.environ, **env},
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{env['PARTNER_GATEWAY_PORT']}/health"
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(url, timeout=1)).status_code == 200:
                    return process
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"gateway did not start: {log.read_text()[-3000:]}")


async def test_sigkill_mid_flight_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, postgres_url: str | None
) -> None:
    smsc = SmscSimulator(
        SmscConfig(
            port=0,
            system_id="crash",
            password="crashpw",
            receipt_delay_min_seconds=0.05,
            receipt_delay_max_seconds=0.3,
        )
    )
    port = await smsc.start()
    gateway_port = free_port()
    # 400 submits/s: slow enough that 2,000 accepted messages are still in flight at the kill.
    carriers = [{"name": "crash", "host": "127.0.0.1", "port": port, "system_id": "crash",
                 "password": "crashpw", "window": 50, "throughput_per_second": 400}]  # fmt: skip
    env = {
        "PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "PARTNER_GATEWAY_PORT": str(gateway_port),
        "PARTNER_GATEWAY_SMPP_CARRIERS": json.dumps(carriers),
        "PARTNER_GATEWAY_LOG_LEVEL": "WARNING",
        # One company sends far faster than its default limit: what is tested is crash safety.
        "PARTNER_GATEWAY_RATE_LIMIT_ENABLED": "false",
    }
    if postgres_url:
        env["PARTNER_GATEWAY_DATABASE_URL"] = postgres_url
    key = json.loads((await asyncio.to_thread(cli, env, "company", "create", "Crash", "--json")).stdout)[
        "apiKey"
    ]
    log = tmp_path / "gateway.log"
    gateway = await start_gateway(env, log)
    base = f"http://127.0.0.1:{gateway_port}"
    headers = {"Authorization": f"Bearer {key}"}
    ids: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            semaphore = asyncio.Semaphore(32)

            async def send(number: int) -> None:
                async with semaphore:
                    response = await client.post(
                        f"{BASE}/sms/messages",
                        json={
                            "to": f"+4915112{number:04d}{number % 90:02d}",
                            "text": f"crash test message #{number}",
                        },
                    )
                    assert response.status_code == 202, response.text
                    ids.append(response.json()["customerMessageId"])

            started = time.monotonic()
            await asyncio.gather(*(send(n) for n in range(MESSAGES)))
            accepted = len(ids)
            # Kill once the carrier has seen part of the traffic, with the rest in flight.
            while smsc.stats.submits < MESSAGES // 2 and time.monotonic() - started < 60:
                await asyncio.sleep(0.01)
            gateway.send_signal(signal.SIGKILL)
            await gateway.wait()
            killed_at_submits = smsc.stats.submits

        gateway = await start_gateway(env, log)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            deadline = time.monotonic() + 180
            statuses: dict[str, str] = {}
            while time.monotonic() < deadline:
                response = await client.post(
                    f"{BASE}/messages/status/query", json={"channel": "SMS", "ids": ids}
                )
                items = response.json()
                statuses = {item["customerMessageId"]: item["deliveryStatus"] for item in items}
                if len(statuses) == accepted and all(is_final(item) for item in items):
                    break
                await asyncio.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        if gateway.returncode is None:
            gateway.send_signal(signal.SIGTERM)
            await asyncio.wait_for(gateway.wait(), 30)
        await smsc.stop()

    counts = {status: list(statuses.values()).count(status) for status in sorted(set(statuses.values()))}
    report = {
        "accepted": accepted,
        "carrier_submits": smsc.stats.submits,
        "carrier_duplicates": smsc.stats.duplicates,
        "submits_when_killed": killed_at_submits,
        "statuses": counts,
        "unknown_because": sorted(
            {item["deliveryStatusDescription"] for item in items if item["deliveryStatus"] == "UNKNOWN"}
        ),
        "seconds": round(elapsed, 1),
    }
    print("crash test:", json.dumps(report))
    (tmp_path / "crash-report.json").write_text(json.dumps(report))
    assert len(statuses) == accepted, "a message the partner got a 202 for is missing"
    assert all(is_final(item) for item in items), counts
    assert accepted == MESSAGES
    assert killed_at_submits < MESSAGES, "the kill came after everything was sent"
    assert smsc.stats.duplicates == 0, report
