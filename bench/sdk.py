"""The Python SDK against a served gateway: what its batching and concurrency buy, and what it
costs over raw httpx. Starts `partner-gateway serve` on the embedded default (SQLite, a fresh
data folder), makes a company with limits high enough not to be the bottleneck, then measures:

- sends per second through `AsyncClient` and through a bare `httpx.AsyncClient`, 32 at a time;
- `statuses` of 10,000 ids (the sent ones and unknown ones) each way the SDK can split them.

    .venv/bin/python bench/sdk.py [--messages 2000] [--repeat 3]

Prints one JSON document; docs/sdk.md quotes its figures with the machine they came from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from partner_gateway.domain.ids import new_message_id
from partner_gateway_sdk import AsyncClient, Client

BIN = Path(sys.executable).parent / "partner-gateway"
NUMBER = "+4915112345600"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN), *args], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return done.stdout


async def timed(work: Callable[[], Awaitable[Any]], repeat: int) -> float:
    """The median seconds of `repeat` runs of `work`."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        await work()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


async def sends(url: str, key: str, count: int) -> tuple[list[str], float, float]:
    """Sends per second through the SDK and through bare httpx, alternating rounds of `count`
    (the first round of each a warm-up, not counted), so load from elsewhere hits both alike."""
    room = asyncio.Semaphore(32)
    ids: list[str] = []
    async with (
        AsyncClient(key, base_url=url) as client,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as raw,
    ):

        async def one(index: int) -> None:
            async with room:
                ids.append((await client.send_sms(NUMBER, f"sdk {index}")).customer_message_id)

        async def bare(index: int) -> None:
            async with room:
                answer = await raw.post(
                    "/partner-gateway/v1/sms/messages",
                    json={"to": NUMBER, "text": f"raw {index}"},
                    headers={"Idempotency-Key": f"raw-{index}-{time.time_ns()}"},
                )
                answer.raise_for_status()

        seconds = {"sdk": 0.0, "raw": 0.0}
        for round_ in range(3):
            for name, send in (("sdk", one), ("raw", bare)):
                started = time.perf_counter()
                await asyncio.gather(*(send(index) for index in range(count)))
                if round_:
                    seconds[name] += time.perf_counter() - started
    return ids[:4_000], 2 * count / seconds["sdk"], 2 * count / seconds["raw"]


async def lookups(url: str, key: str, ids: list[str], expected: int, repeat: int) -> dict[str, float]:
    results: dict[str, float] = {}
    variants: list[tuple[str, dict[str, Any], str]] = [
        ("auto: 10 POSTs of 1,000, 4 at a time", {}, "auto"),
        ("auto: 10 POSTs of 1,000, one at a time", {"max_concurrency": 1}, "auto"),
        ("one POST of 10,000", {"query_chunk_size": 10_000}, "post"),
        ("GETs of 8,000 bytes (40), 4 at a time", {}, "get"),
        ("GETs of 65,535 bytes (5), 4 at a time", {"max_url_length": 65_535}, "get"),
    ]
    for name, options, method in variants:
        async with AsyncClient(key, base_url=url, **options) as client:
            found = await client.statuses(ids, "SMS", method=method)  # type: ignore[arg-type]
            assert len(found) == expected, (name, len(found))

            async def work(client: AsyncClient = client, method: str = method) -> None:
                await client.statuses(ids, "SMS", method=method)  # type: ignore[arg-type]

            results[f"async, {name}"] = await timed(work, repeat)
    with Client(key, base_url=url) as sync_client:

        async def sync_work() -> None:
            await asyncio.to_thread(sync_client.statuses, ids, "SMS")

        results["sync, auto: 10 POSTs of 1,000, 4 threads"] = await timed(sync_work, repeat)
    return results


CANNED = json.dumps(
    {
        "customerMessageId": "msg_01KB0000000000000000000000",
        "channel": "SMS",
        "to": NUMBER,
        "reference": None,
        "deliveryStatus": "UNKNOWN",
        "deliveryStatusDescription": "Accepted, queued for delivery",
        "errorCode": None,
        "createdAt": "2026-11-27T10:15:30.123Z",
        "updatedAt": "2026-11-27T10:15:30.123Z",
        "encoding": "GSM7",
        "segments": 1,
    }
).encode()


def client_cost(calls: int = 5_000) -> dict[str, float]:
    """Microseconds of this process's CPU per send, the gateway out of the picture (an httpx
    MockTransport answers a canned 202): what the SDK adds over a bare httpx call."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(202, content=CANNED, headers={"Content-Type": "application/json"})

    transport = httpx.MockTransport(handler)
    with httpx.Client(transport=transport, base_url="http://gw.test") as raw:
        started = time.process_time()
        for index in range(calls):
            raw.post(
                "/partner-gateway/v1/sms/messages",
                json={"to": NUMBER, "text": f"raw {index}"},
                headers={"Authorization": "Bearer pgw_key", "Idempotency-Key": f"raw-{index}"},
            ).json()
        bare = time.process_time() - started
    with (
        httpx.Client(transport=transport) as http,
        Client("pgw_key", base_url="http://gw.test", http_client=http) as sdk,
    ):
        started = time.process_time()
        for index in range(calls):
            sdk.send_sms(NUMBER, f"sdk {index}")
        ours = time.process_time() - started
    return {"bare httpx": round(bare / calls * 1e6), "Client.send_sms": round(ours / calls * 1e6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        env = {
            "PARTNER_GATEWAY_DATA_DIR": folder,
            "PARTNER_GATEWAY_PORT": str(port),
            "PARTNER_GATEWAY_LOG_LEVEL": "WARNING",
        }
        created = json.loads(cli(env, "company", "create", "Bench Ltd", "--json"))
        cli(
            env,
            "company",
            "limits",
            created["companyId"],
            "--sends",
            "100000/100000",
            "--reads",
            "100000/100000",
        )
        process = subprocess.Popen([str(BIN), "serve"], env={**os.environ, **env}, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            figures = asyncio.run(measure(url, created["apiKey"], options.messages, options.repeat))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    load = os.getloadavg()[0]
    print(
        json.dumps(
            {
                "cpus": os.cpu_count(),
                "load average (1 min) at the end": round(load, 2),
                "client CPU per send, microseconds": client_cost(),
                **figures,
            },
            indent=2,
        )
    )


async def measure(url: str, key: str, messages: int, repeat: int) -> dict[str, Any]:
    ids, sdk_rate, raw_rate = await sends(url, key, messages)
    start = int(time.time() * 1000) - 86_400_000
    asked = ids + [new_message_id(start + index) for index in range(10_000 - len(ids))]
    lookups_figures = await lookups(url, key, asked, len(ids), repeat)
    return {
        "sends per second, 32 at a time": {"AsyncClient": round(sdk_rate), "bare httpx": round(raw_rate)},
        f"statuses of 10,000 ids ({len(ids)} found), median seconds": {
            name: round(seconds, 3) for name, seconds in lookups_figures.items()
        },
    }


if __name__ == "__main__":
    main()
