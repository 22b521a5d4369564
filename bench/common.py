"""Small helpers every benchmark module shares: paths, logging, ports, the CLI, one-off HTTP calls.

Nothing here measures; it keeps the measuring modules short. Only the standard library is used so
`bench/_jasmin*` and `bench/sidebyside.py` can import it without pulling the gateway in.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BASE = "/partner-gateway/v1"
SEED = 20261127
CLI_TIMEOUT_SECONDS = 120


class BenchError(RuntimeError):
    """A run cannot go on: a wrong answer, a process that died, a tool that is missing."""


def log(message: str) -> None:
    """Progress goes to stderr so stdout holds only the table."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gateway_executable() -> str:
    """The `partner-gateway` of the venv running this script, so the code measured is this checkout's."""
    beside = Path(sys.executable).parent / "partner-gateway"
    if beside.exists():
        return str(beside)
    found = shutil.which("partner-gateway")
    if not found:
        raise BenchError(
            "partner-gateway is not installed; run this with the venv's python (.venv/bin/python)"
        )
    return found


def gateway_env(
    data_dir: Path, port: int, *, database_url: str | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment minus any PARTNER_GATEWAY_* of the caller's (a DATABASE_URL must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTNER_GATEWAY_")}
    env["PARTNER_GATEWAY_DATA_DIR"] = str(data_dir)
    env["PARTNER_GATEWAY_PORT"] = str(port)
    env["PARTNER_GATEWAY_HOST"] = "127.0.0.1"
    env["PARTNER_GATEWAY_LOG_LEVEL"] = os.environ.get("BENCH_LOG_LEVEL", "WARNING")
    # The seeded history is months old: keep the expiry sweep from rewriting it mid-measurement.
    env["PARTNER_GATEWAY_RECEIPT_GRACE_SECONDS"] = str(10 * 365 * 86_400)
    # The figures measure the gateway, not one partner's limit (64 connections of one company
    # are far over it); the `limits` scenario measures what the limits cost, on against off.
    env["PARTNER_GATEWAY_RATE_LIMIT_ENABLED"] = "false"
    if database_url:
        env["PARTNER_GATEWAY_DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run `partner-gateway ARGS` to completion; its stdout, or BenchError with its stderr."""
    done = subprocess.run(
        [gateway_executable(), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        raise BenchError(
            f"partner-gateway {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}"
        )
    return done.stdout


def http_request(
    port: int,
    method: str,
    path: str,
    api_key: str | None = None,
    body: Any = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    """One request on a fresh connection; the status and the JSON body (raw bytes when not JSON)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw[:300]
    finally:
        connection.close()


def http_get(port: int, path: str, api_key: str | None, timeout: float = 30) -> tuple[int, Any]:
    """GET `path` (kept with lookups.py's original signature: other bench scripts import it)."""
    return http_request(port, "GET", path, api_key, timeout=timeout)
