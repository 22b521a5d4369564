"""Faults survived (issue 16): the SQLite store's disk fills up under load, then space returns.

How the disk fills, and why this way: the embedded gateway's data directory is a small tmpfs
mounted for this test (8 MiB), and the test fills it with a file until the kernel says ENOSPC.
SQLite then meets a real full disk on every write, its WAL and the database file alike, and
answers SQLITE_FULL ("database or disk is full"), exactly what an operator's full volume gives.
`PRAGMA max_page_count` yields the same error code but only for the connection that set it and
only for the database file, never the WAL, and it needs the test inside the gateway's process;
a real filesystem tests the process as it runs. Mounting needs root (CAP_SYS_ADMIN), which this
project's machines and CI have; without it the test fails saying so, it is not skipped.

How big the disk is, and why: the filler takes whatever room is left, so the size only sets the
room there is once it is deleted. That room must hold what the load stores in the 20 s that follow
(about 270 KB/s of messages here, the WAL's ~4 MiB besides): on 8 MiB the gateway's own data filled
the disk again 11 s after the filler went, and its last messages waited, SENT or queued, for space
that never came (given space, every one was delivered). The test asserts there was room left at
the end, so a disk the load filled itself cannot pass for messages the gateway lost.

- sends meanwhile are 503 problems with Retry-After (never a 500), but for the few SQLite can still
  commit into room its WAL already holds (stored, and delivered like every other), and look-ups
  go on being answered;
- when the filler is deleted, sends are accepted again without a restart, and go on being
  accepted for the 20 s of load that follow (the writes that failed, retried meanwhile, succeed);
- the store is intact (PRAGMA integrity_check: ok), and every message accepted is delivered, none twice.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_runs import PartnerLoad, start_gateway, stop_gateway, wait_all_final

from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator
from support import cli, free_port

DISK_BYTES = 48 * 1024 * 1024  # room for the load after space returns, see the module doc
LOAD_AFTER_SPACE_RETURNS = 20  # seconds


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert mounted.returncode == 0, f"this test mounts a small tmpfs and needs root: {mounted.stderr}"
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(path: Path) -> int:
    """Write zeros to `path` until the filesystem is full; how many bytes went in."""
    written = 0
    block = b"\0" * 65_536
    with path.open("wb", buffering=0) as filler:
        while True:
            try:
                written += filler.write(block)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
        while True:  # the last few bytes, so not even a page fits
            try:
                written += filler.write(b"\0" * 512)
            except OSError:
                return written


@pytest.mark.slow
async def test_disk_full_is_503_the_store_stays_intact_and_it_recovers(
    tmp_path: Path, small_disk: Path
) -> None:
    smsc = SmscSimulator(
        SmscConfig(port=0, system_id="full", password="fullpw",
                   receipt_delay_min_seconds=0.05, receipt_delay_max_seconds=0.3,
                   max_receipt_resends=1000)  # a carrier offers an unacknowledged receipt again for hours
    )  # fmt: skip
    smsc_port = await smsc.start()
    port = free_port()
    carriers = [{"name": "full", "host": "127.0.0.1", "port": smsc_port, "system_id": "full",
                 "password": "fullpw", "window": 50}]  # fmt: skip
    env = {
        "PARTNER_GATEWAY_DATA_DIR": str(small_disk / "data"),
        "PARTNER_GATEWAY_PORT": str(port),
        "PARTNER_GATEWAY_SMPP_CARRIERS": json.dumps(carriers),
        "PARTNER_GATEWAY_DISPATCH_POLL_SECONDS": "0.1",
        "PARTNER_GATEWAY_DRAIN_GRACE_SECONDS": "0",
        "PARTNER_GATEWAY_LOG_LEVEL": "WARNING",
        "PARTNER_GATEWAY_RATE_LIMIT_ENABLED": "false",  # the load is one company's, far past its limit
    }
    key = json.loads((await asyncio.to_thread(cli, env, "company", "create", "Full", "--json")).stdout)[
        "apiKey"
    ]
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    gateway = await start_gateway(env, log)
    load = PartnerLoad(url, key, clients=3)
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    filler = small_disk / "filler"
    try:
        await asyncio.sleep(2)
        filled = await asyncio.to_thread(fill, filler)
        full_at = time.monotonic()
        await asyncio.sleep(6)
        filler.unlink()
        freed_at = time.monotonic()
        # The whole time, not until sends are accepted again: what the store's failed writes
        # left behind (claims, outcomes, receipts refused meanwhile) shows only under load after.
        await asyncio.sleep(LOAD_AFTER_SPACE_RETURNS)
        stop.set()
        await running
        found = await wait_all_final(url, key, load.accepted, within=60)
        room_left = free_bytes(small_disk)
        exit_code = await stop_gateway(gateway)
    finally:
        stop.set()
        if gateway.returncode is None:
            gateway.kill()
            await gateway.wait()
        await smsc.stop()

    with sqlite3.connect(small_disk / "data" / "partner-gateway.db") as store:
        integrity = store.execute("PRAGMA integrity_check").fetchall()
        stored = store.execute("SELECT count(*) FROM messages").fetchone()[0]
    answers = load.answers
    while_full = [a for a in answers if full_at + 0.5 < a.at < freed_at]
    sends_while_full = [a for a in while_full if a.kind == "send"]
    first_accepted_again = min(
        (a.at for a in answers if a.at > freed_at and a.kind == "send" and a.status == 202),
        default=float("inf"),
    )
    report = {
        "filler_bytes": filled,
        "free_bytes_at_end": room_left,
        "answers": len(answers),
        "sends_while_full": {str(s): sum(1 for a in sends_while_full if a.status == s) for s in {a.status for a in sends_while_full}},
        "look_ups_while_full": {str(s): sum(1 for a in while_full if a.kind != "send" and a.status == s) for s in {a.status for a in while_full if a.kind != "send"}},
        "seconds_to_first_send_accepted_after_space_returned": round(first_accepted_again - freed_at, 2),
        "accepted": len(load.accepted),
        "stored_messages": stored,
        "integrity_check": integrity,
        "carrier_duplicates": smsc.stats.duplicates,
        "carrier_receipts": {"resent": smsc.stats.receipts_resent, "abandoned": smsc.stats.receipts_abandoned},
        "final_statuses": Counter(f"{item['deliveryStatus']} {item.get('errorCode')}" for item in found.values()),
    }  # fmt: skip
    print("disk full:", json.dumps(report))
    assert [a for a in answers if a.status is None] == [], report
    assert not [a for a in answers if a.status is not None and a.status >= 500 and a.status != 503], report
    assert sends_while_full, report
    # Refused with 503 and Retry-After, or stored: SQLite still commits into room its files
    # already hold (WAL frames reused once a checkpoint restarts the log) until a write needs a
    # new block. Those 202s are durable, and are checked below with every accepted message.
    refused = [a for a in sends_while_full if a.status != 202]
    assert refused, report
    assert all(a.status == 503 and a.retry_after for a in refused), report
    assert all(a.status == 200 for a in while_full if a.kind != "send"), report  # reads go on
    assert first_accepted_again - freed_at < 10, report
    assert room_left > 1024 * 1024, report  # else the load filled the disk itself: DISK_BYTES is too small
    sends_later = [a for a in answers if a.kind == "send" and a.at > freed_at + 10]
    assert sends_later, report
    assert all(a.status == 202 for a in sends_later), report  # accepted again is accepted for good
    assert integrity == [("ok",)], report
    assert len(found) == len(load.accepted) == stored, report
    assert all(item["deliveryStatus"] == "DELIVERED" for item in found.values()), report
    assert smsc.stats.duplicates == 0, report
    assert exit_code == 0, log.read_text()[-3000:]
