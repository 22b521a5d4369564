"""The callback sender's HTTP client, chosen by measurement: httpx against aiohttp, alternated in
one run, POSTing callback-sized bodies to bench/sink.py on loopback.

```sh
.venv/bin/python bench/callback_client.py                # 4,000 POSTs per client and round, 8 at once, 3 rounds
.venv/bin/python bench/callback_client.py --smoke        # 200 POSTs, one round
```

The figure that matters is the client's own CPU per request (user + system time of this process
over the requests): the sender runs in the embedded gateway's one process, so every callback's
CPU is taken from sending and receipts. Requests per second are shown beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
from common import free_port, log

# A status callback's size and headers (docs/callbacks.md).
BODY = (
    b'{"customerMessageId":"msg_01KB0000000000000000000000","channel":"SMS","to":"+4915112345678",'
    b'"reference":"order-1234","deliveryStatus":"DELIVERED","deliveryStatusDescription":"Delivered to '
    b'the handset","errorCode":null,"createdAt":"2026-11-27T10:15:30.123Z","updatedAt":"2026-11-27T10:'
    b'15:32.480Z","encoding":"GSM7","segments":1,"eventId":"evt_01KB0000000000000000000000",'
    b'"occurredAt":"2026-11-27T10:15:32.480Z","sequence":2}'
)
HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "partner-gateway-callbacks/1",
    "X-Partner-Gateway-Event-Id": "evt_01KB0000000000000000000000",
    "X-Partner-Gateway-Signature": "t=1796000000,v1=" + "0" * 64,
}
MAX_ANSWER_BYTES = 16_384


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(one: Callable[[], Awaitable[None]], requests: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def gated() -> None:
        async with gate:
            await one()

    await asyncio.gather(*(gated() for _ in range(requests)))


async def with_httpx(url: str, requests: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, trust_env=False, follow_redirects=False) as client:

        async def one() -> None:  # as callbacks/attempt.py did with httpx
            request = client.build_request("POST", url, content=BODY, headers=HEADERS)
            response = await client.send(request, stream=True)
            try:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= MAX_ANSWER_BYTES:
                        break
            finally:
                await response.aclose()

        await one()  # the connection made before the clock starts, as for aiohttp
        await drive(one, requests, concurrency)


async def with_aiohttp(url: str, requests: int, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False) as session:

        async def one() -> None:  # as callbacks/attempt.py does
            async with session.post(url, data=BODY, headers=HEADERS, allow_redirects=False) as response:
                read = 0
                while read < MAX_ANSWER_BYTES:
                    chunk = await response.content.readany()
                    if not chunk:
                        break
                    read += len(chunk)

        await one()
        await drive(one, requests, concurrency)


CLIENTS = {"httpx": with_httpx, "aiohttp": with_aiohttp}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.rounds = 200, 1
    port = free_port()
    sink = subprocess.Popen([sys.executable, str(Path(__file__).parent / "sink.py"), "--port", str(port)])
    try:
        time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/cb"
        print("| round | client | CPU µs per request | requests/s |\n|---|---|---|---|")
        for round_no in range(1, args.rounds + 1):
            for name, run in CLIENTS.items():
                cpu, started = cpu_seconds(), time.monotonic()
                asyncio.run(run(url, args.requests, args.concurrency))
                spent, elapsed = cpu_seconds() - cpu, time.monotonic() - started
                print(
                    f"| {round_no} | {name} | {spent / args.requests * 1e6:,.0f} | {args.requests / elapsed:,.0f} |"
                )
        log("done")
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
