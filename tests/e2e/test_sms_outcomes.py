"""SPEC §6's outcome table for SMS, end to end through `partner-gateway serve` and its SMSC
simulator over SMPP."""

from __future__ import annotations

import time

import httpx

from e2e_support import Gateway
from support import BASE

EXPECTED = {
    "00": ("DELIVERED", None),
    "57": ("DELIVERED", None),
    "89": ("DELIVERED", None),
    "90": ("ERROR", "smpp:0x0000000B"),
    "91": ("ERROR", "smpp-err:001"),
    "92": ("EXPIRED", "smpp-stat:EXPIRED"),
    "93": ("RECEIVED", None),
    "94": ("SENT", None),
    "95": ("UNKNOWN", None),
    "96": ("ERROR", "smpp-err:013"),
}
SETTLED = {"DELIVERED", "ERROR", "EXPIRED", "RECEIVED", "UNKNOWN"}


def wait_settled(
    client: httpx.Client, ids: dict[str, str], quiet_seconds: float = 1.5
) -> dict[str, dict[str, object]]:
    """Poll until every status has settled and nothing changed for a while (94 stays SENT)."""
    deadline = time.monotonic() + 30
    last: dict[str, dict[str, object]] = {}
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        response = client.get(
            f"{BASE}/messages/status", params={"ids": ",".join(ids.values()), "channel": "SMS"}
        )
        current = {item["customerMessageId"]: item for item in response.json()}
        if current != last:
            last, stable_since = current, time.monotonic()
        elif time.monotonic() - stable_since > quiet_seconds and all(
            item["deliveryStatus"] in SETTLED or item["to"].endswith("94") for item in current.values()
        ):
            return last
        time.sleep(0.2)
    raise AssertionError(f"statuses did not settle: {last}")


def test_outcome_table(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as client:
        ids = {}
        for tail in EXPECTED:
            response = client.post(
                f"{BASE}/sms/messages", json={"to": f"+49151123456{tail}", "text": f"outcome {tail}"}
            )
            assert response.status_code == 202
            ids[tail] = response.json()["customerMessageId"]
        final = wait_settled(client, ids)
        for tail, (status, code) in EXPECTED.items():
            item = final[ids[tail]]
            assert (item["deliveryStatus"], item["errorCode"]) == (status, code), (tail, item)
        timeline = client.get(f"{BASE}/messages/{ids['00']}/events", params={"channel": "SMS"}).json()[
            "events"
        ]
        assert [event["rawState"] for event in timeline] == ["ACCEPTED", "ESME_ROK", "DELIVRD"]


def test_a_long_message_is_sent_in_parts_and_delivered_when_all_are(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as client:
        text = "Long message " + "x" * 400  # 413 GSM-7 characters: 3 parts
        sent = client.post(f"{BASE}/sms/messages", json={"to": "+4915112345611", "text": text}).json()
        assert sent["segments"] == 3
        final = wait_settled(client, {"x": sent["customerMessageId"]})
        item = final[sent["customerMessageId"]]
        assert item["deliveryStatus"] == "DELIVERED"
        assert "all 3 parts" in item["deliveryStatusDescription"]
        events = client.get(
            f"{BASE}/messages/{sent['customerMessageId']}/events", params={"channel": "SMS"}
        ).json()
        assert [e["rawState"] for e in events["events"]].count("DELIVRD") == 3
