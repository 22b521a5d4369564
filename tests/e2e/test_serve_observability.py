"""What an operator sees of a running gateway: /metrics after real traffic (a send, a look-up, a
receipt through the SMSC simulator), the JSON log with its access lines and request ids, and a
worker's metrics on its operations port."""

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
from prometheus_client.parser import text_string_to_metric_families

from e2e_support import Gateway, serving
from support import BASE, free_port

DELIVERED_DESTINATION = "+4915112345600"  # the simulator delivers what ends in 00
CARRIER = "simulator"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None) -> Iterator[Gateway]:
    with serving(
        tmp_path_factory.mktemp("observed"), postgres_url, {"PARTNER_GATEWAY_LOG_FORMAT": "json"}
    ) as running:
        yield running


def samples(page: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text page, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def value(page: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return page.get((name, frozenset(labels.items())), 0.0)


def send_and_deliver(gateway: Gateway, request_id: str) -> str:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as client:
        sent = client.post(
            f"{BASE}/sms/messages",
            json={"to": DELIVERED_DESTINATION, "text": "observed"},
            headers={"X-Request-Id": request_id},
        )
        assert sent.status_code == 202, sent.text
        assert sent.headers["x-request-id"] == request_id
        message_id = str(sent.json()["customerMessageId"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            looked_up = client.get(f"{BASE}/messages/status/{message_id}", params={"channel": "SMS"})
            if looked_up.json()["deliveryStatus"] == "DELIVERED":
                return message_id
            time.sleep(0.1)
    raise AssertionError(f"{message_id} was not delivered in 20 s")


def test_metrics_after_a_send_a_look_up_and_a_delivered_receipt(observed: Gateway) -> None:
    send_and_deliver(observed, "e2e-metrics-1")
    scraped = httpx.get(f"{observed.url}/metrics", timeout=10)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    page = samples(scraped.text)

    assert value(page, "partner_gateway_build_info", version=_version(), role="all") == 1
    assert value(page, "partner_gateway_messages_accepted_total", channel="SMS") >= 1
    assert value(page, "partner_gateway_message_status_changes_total", channel="SMS", status="DELIVERED") >= 1
    assert (
        value(page, "partner_gateway_final_status_latency_seconds_count", channel="SMS", status="DELIVERED")
        >= 1
    )
    assert value(page, "partner_gateway_handover_latency_seconds_count", channel="SMS") >= 1
    assert value(page, "partner_gateway_handovers_total", channel="SMS", outcome="accepted") >= 1
    assert value(page, "partner_gateway_smpp_submits_total", carrier=CARRIER, result="accepted") >= 1
    assert value(page, "partner_gateway_smpp_receipts_total", carrier=CARRIER) >= 1
    assert value(page, "partner_gateway_reports_total", provider=f"smpp:{CARRIER}", outcome="applied") >= 1
    assert value(page, "partner_gateway_smpp_binds_up", carrier=CARRIER) >= 1
    assert value(page, "partner_gateway_smpp_window_size", carrier=CARRIER) >= 1
    assert ("partner_gateway_smpp_window_in_flight", frozenset({("carrier", CARRIER)})) in page
    sends = value(
        page, "partner_gateway_http_requests_total", method="POST", route=f"{BASE}/sms/messages", status="202"
    )
    look_ups = value(
        page,
        "partner_gateway_http_requests_total",
        method="GET",
        route=f"{BASE}/messages/status/{{customerMessageId}}",
        status="200",
    )
    assert sends >= 1
    assert look_ups >= 1
    # Read at scrape time from the store: present, and nothing is stuck.
    assert ("partner_gateway_outbox_items", frozenset({("state", "queued")})) in page
    assert ("partner_gateway_parked_receipts", frozenset()) in page
    assert value(page, "partner_gateway_outbox_oldest_due_age_seconds") < 60
    assert not any(name == "partner_gateway_scrape_errors_total" and v for (name, _), v in page.items())
    # Bounded labels: no message id or company id anywhere on the page.
    assert "msg_" not in scraped.text
    assert observed.company_id not in scraped.text


def test_the_json_log_is_one_object_per_line_with_request_ids_and_access_lines(observed: Gateway) -> None:
    message_id = send_and_deliver(observed, "e2e-logs-1")
    with httpx.Client(base_url=observed.url, headers=observed.headers, timeout=10) as client:
        history = client.get(f"{BASE}/messages/history", headers={"X-Request-Id": "e2e-history-1"})
        assert history.headers["x-request-id"] == "e2e-history-1"
    time.sleep(0.3)  # the access line of the last request is written after its answer
    assert observed.log_path is not None
    text = observed.log_path.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line parses

    assert records
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    assert all(record["time"].endswith("Z") for record in records)
    access = [record for record in records if record["logger"] == "partner_gateway.access"]
    send = next(r for r in access if r.get("request_id") == "e2e-logs-1")
    assert (send["method"], send["route"], send["status"]) == ("POST", f"{BASE}/sms/messages", 202)
    assert send["company"] == observed.company_id
    assert send["message_id"] == message_id
    assert isinstance(send["duration_ms"], float)
    history_line = next(r for r in access if r.get("request_id") == "e2e-history-1")
    assert (history_line["route"], history_line["status"]) == (f"{BASE}/messages/history", 200)
    generated = [r for r in access if r["route"].endswith("{customerMessageId}")]
    assert generated
    assert all(len(r["request_id"]) == 32 for r in generated)  # made by the gateway: none was sent
    assert any(f"listening on http://127.0.0.1:{observed.port}" in r["message"] for r in records)
    assert not any(r["logger"].startswith(("httpx", "httpcore")) for r in records)  # the simulators' own
    assert observed.api_key not in text


def test_a_worker_serves_its_own_metrics_on_its_operations_port(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "PARTNER_GATEWAY_OPS_PORT": str(port),
        "PARTNER_GATEWAY_LOG_FORMAT": "json",
    }
    env.pop("PARTNER_GATEWAY_DATABASE_URL", None)  # its own store: it would take the other test's work
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "partner-gateway"), "serve", "--role", "worker"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert worker.poll() is None, log.read_text()
            try:
                scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert scraped.status_code == 200, scraped.text
        page = samples(scraped.text)
        assert value(page, "partner_gateway_build_info", version=_version(), role="worker") == 1
        assert value(page, "partner_gateway_build_info", version=_version(), role="all") == 0  # its own
        assert ("partner_gateway_dispatch_in_flight", frozenset()) in page
        assert ("partner_gateway_outbox_due_items", frozenset()) in page
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        assert any(f"/metrics) on http://127.0.0.1:{port}" in r["message"] for r in records)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


def _version() -> str:
    from importlib.metadata import version

    return version("partner-gateway")
