"""SIGTERM drains (SPEC §7, issue 16), with a partner load running while the signal arrives.

The embedded gateway (`serve`, role all; SQLite, or PostgreSQL on the suite's second run) sends to
an SMSC simulator in this test's process, slow enough (a throughput limit) that hand-overs are in
flight when the signal comes:

- every request that reached the server is answered: the load sees answers, or, once the
  listener has closed, refused connections (it never reached the server), and never a reset, a
  connection closed without an answer, or a timeout;
- from the signal on, /ready answers 503 while requests are still served for the grace;
- the process unbinds from the carrier (unbind answered by unbind_resp) and exits 0, without a
  traceback, within the drain timeout;
- nothing accepted is lost: started again on the same store, every accepted message is
  delivered, and none was submitted twice.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
import pytest
from gateway_runs import PartnerLoad, count_answers, start_gateway, stop_gateway, wait_all_final

from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator
from support import cli, free_port

GRACE_SECONDS = 2.0
TIMEOUT_SECONDS = 20.0


async def watch_ready(url: str, stop: asyncio.Event, seen: list[tuple[float, int | None]]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            try:
                response = await client.get(f"{url}/ready")
                seen.append((time.monotonic(), response.status_code))
            except httpx.HTTPError:
                seen.append((time.monotonic(), None))
            await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
async def test_sigterm_under_load_answers_everything_unbinds_and_exits_0(
    tmp_path: Path, postgres_url: str | None, http_server: str
) -> None:
    smsc = SmscSimulator(
        SmscConfig(port=0, system_id="drain", password="drainpw",
                   receipt_delay_min_seconds=0.05, receipt_delay_max_seconds=0.3)
    )  # fmt: skip
    smsc_port = await smsc.start()
    port = free_port()
    # 40 submits/s: the load accepts more than that, so hand-overs are in flight at the signal.
    carriers = [{"name": "drain", "host": "127.0.0.1", "port": smsc_port, "system_id": "drain",
                 "password": "drainpw", "window": 20, "throughput_per_second": 40}]  # fmt: skip
    env = {
        "PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "PARTNER_GATEWAY_PORT": str(port),
        "PARTNER_GATEWAY_SMPP_CARRIERS": json.dumps(carriers),
        "PARTNER_GATEWAY_DRAIN_GRACE_SECONDS": str(GRACE_SECONDS),
        "PARTNER_GATEWAY_DRAIN_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "PARTNER_GATEWAY_LOG_LEVEL": "WARNING",
        "PARTNER_GATEWAY_HTTP_SERVER": http_server,
    }
    if postgres_url:
        env["PARTNER_GATEWAY_DATABASE_URL"] = postgres_url
    key = json.loads((await asyncio.to_thread(cli, env, "company", "create", "Drain", "--json")).stdout)[
        "apiKey"
    ]
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    gateway = await start_gateway(env, log)
    load = PartnerLoad(url, key)
    stop = asyncio.Event()
    readiness: list[tuple[float, int | None]] = []
    running = asyncio.gather(load.run(stop), watch_ready(url, stop, readiness))
    restarted = None
    try:
        await asyncio.sleep(3)
        signalled_at = time.monotonic()
        submits_at_signal = smsc.stats.submits
        gateway.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(gateway.wait(), TIMEOUT_SECONDS + 5)
        exited_at = time.monotonic()
        await asyncio.sleep(0.5)  # the load meets the closed port a little longer
        stop.set()
        await running
        unbinds = smsc.stats.unbinds
        submitted_while_draining = smsc.stats.submits - submits_at_signal
        drain_log = log.read_text()

        restarted = await start_gateway(env, log)
        found = await wait_all_final(url, key, load.accepted, within=90)
        assert await stop_gateway(restarted) == 0
    finally:
        stop.set()
        for process in (gateway, restarted):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        await smsc.stop()

    answers = load.answers
    after_signal = [a for a in answers if a.at > signalled_at]
    unanswered = [a for a in answers if a.status is None]
    report = {
        "answers": len(answers),
        "after_signal": count_answers(after_signal),
        "accepted": len(load.accepted),
        "accepted_during_grace": sum(
            1
            for a in after_signal
            if a.kind == "send" and a.status == 202 and a.at < signalled_at + GRACE_SECONDS
        ),
        "seconds_to_exit": round(exited_at - signalled_at, 2),
        "carrier_submits": smsc.stats.submits,
        "carrier_duplicates": smsc.stats.duplicates,
        "unbinds": unbinds,
        "submitted_while_draining": submitted_while_draining,
        "statuses": {s: sum(1 for i in found.values() if i["deliveryStatus"] == s) for s in ("DELIVERED",)},
    }
    print("drain:", json.dumps(report))
    assert exit_code == 0, drain_log[-3000:]
    assert "Traceback" not in drain_log, drain_log[-5000:]
    assert exited_at - signalled_at < TIMEOUT_SECONDS, report
    # Only refused connections, and only once the listener closed (after the grace).
    # On granian, a connection whose request it has not read yet when it stops is closed under it
    # (httpx: ReadError or RemoteProtocolError; docs/performance.md, "granian"): allowed there,
    # counted in the report, never a 202 lost (none was given), and why uvicorn stays the default.
    closed = {"ReadError", "RemoteProtocolError"}
    refusals = {"ConnectError", *closed} if http_server == "granian" else {"ConnectError"}
    assert {a.error for a in unanswered} <= refusals, report
    assert all(a.at > signalled_at + GRACE_SECONDS - 0.2 for a in unanswered), report
    assert not [a for a in answers if a.status is not None and a.status >= 500], report
    assert report["accepted_during_grace"] > 0, report  # served on while not ready
    during_grace = [
        status for at, status in readiness if signalled_at + 0.3 < at < signalled_at + GRACE_SECONDS
    ]
    assert during_grace, readiness
    assert set(during_grace) == {503}, readiness
    assert unbinds >= 1, report
    assert submitted_while_draining > 0, report  # the hand-overs in flight were finished
    assert len(found) == len(load.accepted), report
    assert all(item["deliveryStatus"] == "DELIVERED" for item in found.values()), report
    assert smsc.stats.duplicates == 0, report
