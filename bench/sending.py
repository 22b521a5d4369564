"""Sends: accepted SMS per second, and delivered messages per second through an SMSC simulator.

- Accepted/s: wrk POSTs `/sms/messages`, a new destination each request, for the scenario's
  duration; a 202 means the message, its first event and its outbox item are committed.
- Delivered/s (end to end): wrk POSTs exactly N messages (destinations ending 00-89, which the
  simulator delivers); the figure is N / (last DELIVERED - first accepted), both read from the
  store's own `created_at`/`updated_at`, which the gateway stamps when it accepts and when it
  records the receipt. p50/p99 are per message, accept to DELIVERED.

The carrier is a `partner_gateway.simulators.smsc.SmscSimulator` in this process (on its own thread
and loop, pinned with wrk, off the server's CPU), so its counters are the carrier's own view:
submits, receipts and the duplicates it saw. Every send scenario uses a company of its own, so its
messages are counted apart from the seeded ones.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from common import BASE, BenchError, http_request, log
from stores import Reader

SIM_SYSTEM_ID = "bench"
SIM_PASSWORD = "benchpw"
POLL_SECONDS = 0.2
STALL_SECONDS = 20.0  # no message delivered for this long: stop waiting, report what is stuck
CARRIER_COUNTERS = (
    "binds",
    "submits",
    "submits_accepted",
    "submits_rejected",
    "throttled",
    "duplicates",
    "receipts_sent",
    "receipts_acknowledged",
    "receipts_resent",
    "receipts_abandoned",
)
STATUS_KEYS = frozenset({"customerMessageId", "channel", "to", "deliveryStatus", "createdAt"})


class SmscThread:
    """An SMSC simulator on a thread of its own with its own event loop.

    Each one is a carrier of its own name (`bench1`, `bench2`, ...): bind slots are leased per
    carrier name in the store, so a gateway that held this carrier's binds cannot keep the next
    gateway of the run waiting for its lease to run out.
    """

    _started = 0

    def __init__(self, receipt_delay: tuple[float, float], window: int, binds: int) -> None:
        from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator

        SmscThread._started += 1
        self.name = f"bench{SmscThread._started}"
        self.window = window
        self.binds = binds
        self.simulator = SmscSimulator(
            SmscConfig(
                port=0,
                system_id=SIM_SYSTEM_ID,
                password=SIM_PASSWORD,
                receipt_delay_min_seconds=receipt_delay[0],
                receipt_delay_max_seconds=receipt_delay[1],
                max_receipt_resends=50,  # carriers retry unacknowledged receipts for hours
                max_pending_receipts=1_000_000,
                max_tracked_submissions=1_000_000,
                seed=7,
            )
        )
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smsc", daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.simulator.start(), self._loop).result(timeout=30)

    @property
    def stats(self) -> Any:
        return self.simulator.stats

    def carriers_setting(self) -> str:
        """PARTNER_GATEWAY_SMPP_CARRIERS pointing at this simulator."""
        return json.dumps(
            [
                {
                    "name": self.name,
                    "host": "127.0.0.1",
                    "port": self.port,
                    "system_id": SIM_SYSTEM_ID,
                    "password": SIM_PASSWORD,
                    "window": self.window,
                    "binds": self.binds,
                }
            ]
        )

    def wait_binds(self, count: int, timeout: float = 60.0) -> None:
        """Until `count` binds have been made since start: the workers are ready to send."""
        deadline = time.monotonic() + timeout
        while self.stats.binds < count:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the SMSC simulator saw {self.stats.binds} of {count} binds in {timeout:.0f} s"
                )
            time.sleep(0.05)

    def counters(self) -> dict[str, int]:
        return {name: int(getattr(self.stats, name)) for name in CARRIER_COUNTERS}

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, as the gateway runs: the carrier must not be the slow end."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def check_send(port: int, api_key: str) -> None:
    """One send, answered 202 with a queued status: the send scenarios' shape check."""
    body = {"to": "+4915100000001", "text": "bench shape check"}
    status, answer = http_request(port, "POST", f"{BASE}/sms/messages", api_key, body)
    if status != 202:
        raise BenchError(f"POST /sms/messages answered {status}: {str(answer)[:300]}")
    if not isinstance(answer, dict) or not answer.keys() >= STATUS_KEYS or answer["channel"] != "SMS":
        raise BenchError(f"POST /sms/messages answered an unexpected body: {str(answer)[:300]}")


@dataclass(frozen=True)
class Delivery:
    """What the store says about one company's sends after an end-to-end run."""

    accepted: int
    delivered: int
    seconds: float  # first accepted to last delivered
    p50_ms: float
    p99_ms: float
    complete: bool
    wait_seconds: float
    undelivered: dict[str, int]  # "STATUS: description (outbox state)" -> count, when incomplete

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


def wait_delivered(reader: Reader, company_id: str, expected: int, timeout: float) -> Delivery:
    """Poll the store until `expected` messages of the company are DELIVERED, `timeout` passes, or
    none has been delivered for STALL_SECONDS."""
    began = progressed = time.monotonic()
    delivered = 0
    while time.monotonic() - began < timeout and time.monotonic() - progressed < STALL_SECONDS:
        before = delivered
        delivered = int(
            reader.fetchall(
                "SELECT count(*) FROM messages WHERE company_id = ? AND status = 'DELIVERED'", company_id
            )[0][0]
        )
        if delivered >= expected:
            break
        if delivered > before:
            progressed = time.monotonic()
        time.sleep(POLL_SECONDS)
    waited = time.monotonic() - began
    accepted = int(reader.fetchall("SELECT count(*) FROM messages WHERE company_id = ?", company_id)[0][0])
    rows = reader.fetchall(
        "SELECT created_at, updated_at, status FROM messages WHERE company_id = ?", company_id
    )
    if not rows:
        raise BenchError("no message of the end-to-end run reached the store")
    first_accepted = min(created for created, _, _ in rows)
    latencies = sorted(updated - created for created, updated, status in rows if status == "DELIVERED")
    last_delivered = max(
        (updated for _, updated, status in rows if status == "DELIVERED"), default=first_accepted
    )
    seconds = (last_delivered - first_accepted) / 1000

    def percentile(fraction: float) -> float:
        return float(latencies[min(len(latencies) - 1, int(len(latencies) * fraction))]) if latencies else 0.0

    complete = len(latencies) >= expected
    undelivered: dict[str, int] = {}
    if not complete:
        rows = reader.fetchall(
            "SELECT m.status, m.status_description, o.state, count(*) FROM messages m"
            " LEFT JOIN outbox o ON o.message_id = m.id WHERE m.company_id = ? AND m.status <> 'DELIVERED'"
            " GROUP BY m.status, m.status_description, o.state",
            company_id,
        )
        undelivered = {
            f"{status}: {description} ({f'outbox {state}' if state else 'no outbox item'})": int(n)
            for status, description, state, n in rows
        }
        log(
            f"end to end: only {len(latencies):,} of {expected:,} delivered after {waited:.0f} s: {undelivered}"
        )
    return Delivery(
        accepted, len(latencies), seconds, percentile(0.5), percentile(0.99), complete, waited, undelivered
    )
