"""A real `partner-gateway serve` process on a free port, as a partner would reach it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from e2e_support import Gateway
from support import cli, free_port


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None) -> Iterator[Gateway]:
    data = tmp_path_factory.mktemp("gateway")
    port = free_port()
    env = {"PARTNER_GATEWAY_DATA_DIR": str(data / "data"), "PARTNER_GATEWAY_PORT": str(port)}
    if postgres_url:
        env["PARTNER_GATEWAY_DATABASE_URL"] = postgres_url
    created = json.loads(cli(env, "company", "create", "E2E Ltd", "--json").stdout)
    log = (data / "serve.log").open("w")
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
                raise RuntimeError(f"serve exited: {(data / 'serve.log').read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not start in 30 s")
            time.sleep(0.1)
        yield Gateway(url, port, created["apiKey"], created["companyId"], env)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
