"""A served gateway (`serving`), and raw HTTP over a socket: requests written in small pieces, as
slow networks deliver them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from partner_gateway.callbacks.sender import UNRECORDED_ROUNDS
from partner_gateway.config import Settings
from support import cli, free_port

MOST_SENT_TWICE_BY_A_CRASH: int = (
    UNRECORDED_ROUNDS * Settings.model_fields["callback_concurrency_per_endpoint"].default
)
"""Callbacks one killed process may have had answered and not recorded, per endpoint (its
attempts under way included: callbacks/sender.py), with the default settings."""


@dataclass(frozen=True)
class Gateway:
    url: str
    port: int
    api_key: str
    company_id: str
    env: dict[str, str]
    log_path: Path | None = None  # what the process wrote (stdout and stderr)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def send_in_pieces(
    port: int, target: str, api_key: str, piece: int = 1024
) -> tuple[int, dict[str, str], bytes]:
    request = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {api_key}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    deadline = time.monotonic() + 20
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(request), piece):
            try:
                connection.sendall(request[start : start + piece])
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered early and stopped reading: read its answer
            time.sleep(0.0005)
        return read_response(connection, deadline)


def read_response(connection: socket.socket, deadline: float) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while time.monotonic() < deadline:
        chunk = connection.recv(65_536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return status, headers, body


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


@contextlib.contextmanager
def serving(
    data: Path, postgres_url: str | None, extra_env: dict[str, str] | None = None
) -> Iterator[Gateway]:
    """`partner-gateway serve` on a free port with a company made, its output in data/serve.log."""
    port = free_port()
    env = {
        "PARTNER_GATEWAY_DATA_DIR": str(data / "data"),
        "PARTNER_GATEWAY_PORT": str(port),
        **(extra_env or {}),
    }
    if postgres_url:
        env["PARTNER_GATEWAY_DATABASE_URL"] = postgres_url
    created = json.loads(cli(env, "company", "create", "E2E Ltd", "--json").stdout)
    log_path = data / "serve.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "partner-gateway"), "serve"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited: {log_path.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not start in 30 s")
            time.sleep(0.1)
        yield Gateway(url, port, created["apiKey"], created["companyId"], env, log_path)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextlib.contextmanager
def serving_on_own_database(
    folder: Path, postgres_url: str | None, name: str, env: dict[str, str]
) -> Iterator[Gateway]:
    """`serving` on SQLite, or on a PostgreSQL database of its own (`<session's>_<name>`: the
    session's database is the in-process tests', emptied by each), dropped afterwards."""
    if not postgres_url:
        with serving(folder, None, env) as gateway:
            yield gateway
        return
    server, session_database = postgres_url.rsplit("/", 1)
    own = f"{session_database}_{name}"
    admin = postgres_url.replace("postgresql+asyncpg", "postgresql")
    asyncio.run(_admin(admin, f'CREATE DATABASE "{own}"'))
    try:
        with serving(folder, f"{server}/{own}", env) as gateway:
            yield gateway
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)'))


async def _admin(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
