"""The database URLs operators write (SPEC §7): `serve` and the CLI on `sqlite:///…`,
`postgresql://…` and `postgres://…`, one store for both whichever folder they run from."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from support import BASE, cli, free_port

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped afterwards."""
    name = f"pgw_urls_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def serve_and_send(env: dict[str, str], cwd: Path, api_key: str) -> dict[str, object]:
    """Start `serve` with `env` in `cwd`, send an SMS, and return its status once delivered."""
    port = free_port()
    log_path = cwd / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "partner-gateway"), "serve"],
            env={**os.environ, **env, "PARTNER_GATEWAY_PORT": str(port)},
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}{BASE}"
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                sent = httpx.post(
                    f"{url}/sms/messages", json={"to": "+4915112345678", "text": "hi"}, headers=headers
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not start in 30 s"
                time.sleep(0.1)
        assert sent.status_code == 202, sent.text
        message_id = sent.json()["customerMessageId"]
        status: dict[str, object] = {}
        for _ in range(150):
            status = httpx.get(f"{url}/messages/status/{message_id}?channel=SMS", headers=headers).json()
            if status["deliveryStatus"] == "DELIVERED":
                break
            time.sleep(0.1)
        return status
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


@pytest.mark.parametrize("form", ["sqlite:///relative", "sqlite:////absolute"])
def test_serve_and_the_cli_on_sqlite_urls(tmp_path: Path, form: str) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    url = "sqlite:///stores/gateway.db" if form.endswith("relative") else f"sqlite:///{tmp_path}/gateway.db"
    env = {"PARTNER_GATEWAY_DATABASE_URL": url}
    created = cli(env, "company", "create", "Acme", "--json", cwd=str(folder))
    expected = folder / "stores" / "gateway.db" if form.endswith("relative") else tmp_path / "gateway.db"
    assert created.stderr == f"store: SQLite {expected}\n"
    status = serve_and_send(env, folder, json.loads(created.stdout)["apiKey"])
    assert status["deliveryStatus"] == "DELIVERED"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_serve_and_the_cli_on_libpq_urls(tmp_path: Path, fresh_database: str, scheme: str) -> None:
    env = {"PARTNER_GATEWAY_DATABASE_URL": f"{scheme}://postgres@127.0.0.1:5432/{fresh_database}"}
    created = cli(env, "company", "create", "Acme", "--json")
    assert created.stderr == f"store: PostgreSQL 127.0.0.1:5432/{fresh_database}\n"
    status = serve_and_send(env, tmp_path, json.loads(created.stdout)["apiKey"])
    assert status["deliveryStatus"] == "DELIVERED"


def test_the_default_store_is_the_same_from_any_folder(tmp_path: Path) -> None:
    """No URL, no data directory: the user's data directory, wherever the command runs."""
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        created = cli(env, "company", "create", f"Acme {folder}", cwd=str(tmp_path / folder))
        assert (
            created.stderr == f"store: SQLite {tmp_path / 'xdg' / 'partner-gateway' / 'partner-gateway.db'}\n"
        )
