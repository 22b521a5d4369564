"""Drive a real `partner-gateway serve` over TCP the way a partner would."""

from __future__ import annotations

import json
import socket
import time

import httpx

from e2e_support import Gateway, read_response, send_in_pieces
from partner_gateway.api.key_cache import KEY_CACHE_TTL_SECONDS
from support import BASE, cli


def test_send_look_up_batch_and_history(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as client:
        sent = client.post(f"{BASE}/sms/messages", json={"to": "+4915112345600", "text": "Hello over TCP"})
        assert sent.status_code == 202
        message_id = sent.json()["customerMessageId"]
        single = client.get(sent.headers["location"])
        assert single.status_code == 200
        assert single.json()["customerMessageId"] == message_id
        batch = client.get(f"{BASE}/messages/status", params={"ids": f"{message_id},nope", "channel": "SMS"})
        assert [item["customerMessageId"] for item in batch.json()] == [message_id]
        history = client.get(f"{BASE}/messages/history", params={"limit": "10"})
        assert message_id in [item["customerMessageId"] for item in history.json()["items"]]


def test_a_64_kib_request_line_sent_in_pieces_is_served(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as client:
        sent = client.post(f"{BASE}/sms/messages", json={"to": "+4915112345601", "text": "needle"}).json()
    needle = sent["customerMessageId"]
    path = f"{BASE}/messages/status?channel=SMS&ids="
    filler = []
    while len(path) + len(",".join([*filler, needle])) < 65_523 - 31:
        filler.append(f"msg_{len(filler):026d}")
    target = path + ",".join([*filler, needle])
    target += "," * (65_523 - len(target))
    assert len(target) == 65_523
    status, _headers, body = send_in_pieces(gateway.port, target, gateway.api_key)
    assert status == 200, body[:300]
    assert [item["customerMessageId"] for item in json.loads(body)] == [needle]
    assert len(filler) >= 1_000


def test_past_the_limit_is_a_414_problem_not_a_dropped_connection(gateway: Gateway) -> None:
    target = f"{BASE}/messages/status?channel=SMS&ids=" + "x" * 70_000
    status, headers, body = send_in_pieces(gateway.port, target, gateway.api_key)
    assert status == 414
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 414
    assert "split" in problem["detail"]


def test_revoked_key_is_refused_within_the_key_cache_ttl(gateway: Gateway) -> None:
    created = json.loads(
        cli(gateway.env, "apikey", "create", "--company", gateway.company_id, "--json").stdout
    )
    headers = {"Authorization": f"Bearer {created['apiKey']}"}
    assert httpx.get(f"{gateway.url}{BASE}/messages/history", headers=headers).status_code == 200
    cli(gateway.env, "apikey", "revoke", created["apiKeyId"])
    # The server remembers a verified key for KEY_CACHE_TTL_SECONDS (counted from the 200 above,
    # so already partly spent by the CLI run): the revocation counts within that time.
    deadline = time.monotonic() + KEY_CACHE_TTL_SECONDS + 1.0
    refused = httpx.get(f"{gateway.url}{BASE}/messages/history", headers=headers)
    while refused.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        refused = httpx.get(f"{gateway.url}{BASE}/messages/history", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")


def test_openapi_and_docs_are_served(gateway: Gateway) -> None:
    document = httpx.get(f"{gateway.url}{BASE}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert httpx.get(f"{gateway.url}{BASE}/docs").status_code == 200


def test_garbage_on_the_wire_gets_a_problem(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as connection:
        connection.sendall(b"HELLO WORLD\r\n\r\n")
        status, headers, _ = read_response(connection, time.monotonic() + 5)
    assert status == 400
    assert headers["content-type"] == "application/problem+json"


def test_an_operator_finds_any_message_and_its_timeline(gateway: Gateway) -> None:
    sent = httpx.post(
        f"{gateway.url}{BASE}/sms/messages",
        json={"to": "+4915112345611", "text": "hello"},
        headers=gateway.headers,
    )
    message_id = sent.json()["customerMessageId"]
    shown: dict[str, object] = {}
    for _ in range(100):
        shown = json.loads(cli(gateway.env, "messages", "show", message_id, "--json").stdout)
        if shown["deliveryStatus"] == "DELIVERED":
            break
        time.sleep(0.1)
    assert (shown["companyId"], shown["channel"], shown["deliveryStatus"]) == (
        gateway.company_id,
        "SMS",
        "DELIVERED",
    )
    events = shown["events"]
    assert isinstance(events, list)
    assert [event["deliveryStatus"] for event in events][-1] == "DELIVERED"
    traffic = json.loads(cli(gateway.env, "company", "show", gateway.company_id, "--json").stdout)["traffic"]
    assert traffic["SMS"]["DELIVERED"] >= 1
