"""`partner-gateway callbacks replay` and `callbacks listen`, run as an operator would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from partner_gateway.callbacks.signing import sign
from support import cli, free_port


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data")}


def test_replay_checks_its_window_and_company(env: dict[str, str]) -> None:
    company = json.loads(cli(env, "company", "create", "Acme", "--json").stdout)["companyId"]
    done = json.loads(
        cli(env, "callbacks", "replay", "--company", company, "--since", "2026-01-01", "--json").stdout
    )
    assert done == {"replayed": 0}
    bad = cli(env, "callbacks", "replay", "--company", company, "--since", "yesterday", check=False)
    assert bad.returncode == 2
    assert "--since must be an RFC 3339 date-time" in bad.stderr
    backwards = cli(env, "callbacks", "replay", "--company", company, "--since", "2026-02-01", "--until",
                    "2026-01-01", check=False)  # fmt: skip
    assert backwards.returncode == 2
    unknown = cli(env, "callbacks", "replay", "--company", "cmp_nope", "--since", "2026-01-01", check=False)
    assert unknown.returncode == 1
    assert "no company 'cmp_nope'" in unknown.stderr


def test_listen_prints_each_callback_and_whether_its_signature_holds(tmp_path: Path) -> None:
    port = free_port()
    secret = "whsec_test"
    listener = subprocess.Popen(
        [str(Path(sys.executable).parent / "partner-gateway"), "callbacks", "listen", "--port", str(port),
         "--secret", secret],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        body = json.dumps({"customerMessageId": "msg_1", "channel": "SMS", "deliveryStatus": "DELIVERED",
                           "deliveryStatusDescription": "Delivered", "sequence": 2}).encode()  # fmt: skip
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        good = httpx.post(
            f"http://127.0.0.1:{port}/cb",
            content=body,
            headers={"X-Partner-Gateway-Signature": sign([secret], int(time.time()), body),
                     "X-Partner-Gateway-Event-Id": "evt_good"},
        )  # fmt: skip
        bad = httpx.post(
            f"http://127.0.0.1:{port}/cb",
            content=body,
            headers={"X-Partner-Gateway-Signature": sign(["whsec_other"], int(time.time()), body),
                     "X-Partner-Gateway-Event-Id": "evt_bad"},
        )  # fmt: skip
        assert good.status_code == bad.status_code == 204
    finally:
        listener.terminate()
        out, _err = listener.communicate(timeout=10)
    lines = [line for line in out.splitlines() if line.strip() and not line.startswith("  ")]
    assert len(lines) == 2, out
    assert "evt_good #2 msg_1 SMS DELIVERED (Delivered) -> 204, signature ok" in lines[0]
    assert "evt_bad" in lines[1]
    assert "SIGNATURE INVALID" in lines[1]
