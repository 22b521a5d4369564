"""Real gateway processes for the fault and drain tests, and a partner load that records every answer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from support import BASE

FINAL = {"DELIVERED", "ERROR", "EXPIRED", "UNKNOWN"}


async def start_gateway(env: dict[str, str], log: Path, role: str = "all") -> asyncio.subprocess.Process:
    """`partner-gateway serve --role ROLE`, once it answers /health (on its ops port, for a worker)."""
    with log.open("a") as output:  # the child keeps its own copy of the descriptor
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "partner-gateway"), "serve", "--role", role,
            env={**os.environ, **env}, stdout=output, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    port = env["PARTNER_GATEWAY_OPS_PORT" if role == "worker" else "PARTNER_GATEWAY_PORT"]
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if process.returncode is not None:
                break
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health", timeout=1)).status_code == 200:
                    return process
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"the gateway ({role}) did not start: {log.read_text()[-3000:]}")


async def stop_gateway(process: asyncio.subprocess.Process, within: float = 40) -> int:
    """SIGTERM, and the exit code once it has exited (killed, and a failure, past `within` s)."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"the gateway did not exit within {within} s of SIGTERM") from None


@dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic() when the answer (or the failure) came
    kind: str  # send, status, batch
    status: int | None  # None: no HTTP answer (error says what happened)
    retry_after: str | None = None
    content_type: str | None = None
    error: str | None = None  # the httpx exception's type name


@dataclass
class PartnerLoad:
    """Partners sending SMS and looking up statuses as fast as `clients` connections allow, each
    answer recorded; bounded by `max_requests` per client and by `stop`."""

    url: str
    api_key: str
    clients: int = 6
    max_requests: int = 20_000
    timeout: float = 15.0
    answers: list[Answer] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._client(number, stop) for number in range(self.clients)))

    async def _client(self, number: int, stop: asyncio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=self.timeout) as client:
            for count in range(self.max_requests):
                if stop.is_set():
                    return
                if count % 3 == 0:
                    kind = "send"
                    request = client.build_request(
                        "POST",
                        f"{BASE}/sms/messages",
                        json={
                            "to": f"+49151{number % 10}{count:05d}{count % 90:02d}",
                            "text": f"load {number}.{count}",
                        },
                    )
                elif count % 3 == 1 or not self.accepted:
                    kind = "status"
                    wanted = random.choice(self.accepted) if self.accepted else "01JNOTHING0000000000000000"
                    request = client.build_request("GET", f"{BASE}/messages/status/{wanted}?channel=SMS")
                else:
                    kind = "batch"
                    ids = ",".join(random.sample(self.accepted, min(20, len(self.accepted))))
                    request = client.build_request("GET", f"{BASE}/messages/status?channel=SMS&ids={ids}")
                try:
                    response = await client.send(request)
                except httpx.HTTPError as error:
                    self.answers.append(Answer(time.monotonic(), kind, None, error=type(error).__name__))
                    await asyncio.sleep(0.05)  # refused: the next try is not a busy loop
                    continue
                self.answers.append(
                    Answer(
                        time.monotonic(),
                        kind,
                        response.status_code,
                        response.headers.get("retry-after"),
                        response.headers.get("content-type"),
                    )
                )
                if kind == "send" and response.status_code == 202:
                    self.accepted.append(response.json()["customerMessageId"])
                elif response.status_code >= 500:
                    await asyncio.sleep(0.05)


async def statuses(url: str, api_key: str, ids: list[str]) -> dict[str, dict[str, str]]:
    """Every message's status, by id, through the batch query."""
    found: dict[str, dict[str, str]] = {}
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        for start in range(0, len(ids), 5000):
            response = await client.post(
                f"{BASE}/messages/status/query", json={"channel": "SMS", "ids": ids[start : start + 5000]}
            )
            response.raise_for_status()
            found.update({item["customerMessageId"]: item for item in response.json()})
    return found


async def wait_all_final(url: str, api_key: str, ids: list[str], within: float) -> dict[str, dict[str, str]]:
    """The statuses once every message is final (or as they are after `within` seconds)."""
    deadline = time.monotonic() + within
    while True:
        found = await statuses(url, api_key, ids)
        if (len(found) == len(ids) and all(is_final(item) for item in found.values())) or (
            time.monotonic() > deadline
        ):
            return found
        await asyncio.sleep(0.5)


def is_final(item: dict[str, str]) -> bool:
    """UNKNOWN is final only when the gateway gave up on it, not while it is still queued."""
    queued = item["deliveryStatusDescription"].startswith(("Accepted, queued", "Will retry"))
    return item["deliveryStatus"] in FINAL and not (item["deliveryStatus"] == "UNKNOWN" and queued)


ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new database on the shared PostgreSQL (never the shared `test` one), dropped afterwards;
    yields its name."""
    name = f"pgw_faults_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@contextlib.asynccontextmanager
async def fresh_vhost() -> AsyncIterator[str]:
    """A RabbitMQ virtual host of its own (the broker is never restarted), deleted afterwards."""
    name = f"pgw_faults_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(_rabbitmqctl, "add_vhost", name)
    try:
        await asyncio.to_thread(_rabbitmqctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        await asyncio.to_thread(_rabbitmqctl, "delete_vhost", name)


def count_answers(answers: list[Answer]) -> dict[str, int]:
    """How many answers of each kind and status (or error), for a report."""
    counts: dict[str, int] = {}
    for answer in answers:
        name = f"{answer.kind} {answer.status or answer.error}"
        counts[name] = counts.get(name, 0) + 1
    return counts
