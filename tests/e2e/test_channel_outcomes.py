"""SPEC §6's outcome table for WHATSAPP and RCS, end to end through `partner-gateway serve` and
its simulators (the Cloud API and RBM formats over HTTP, signed webhooks back), and the RCS
fallback to SMS."""

from __future__ import annotations

import time

import httpx
import pytest

from e2e_support import Gateway
from support import BASE

# (status, errorCode) once settled; None = any code. 94 is checked to stay SENT.
WHATSAPP = {
    "00": ("DELIVERED", None),
    "90": ("ERROR", "whatsapp:100"),
    "91": ("ERROR", "whatsapp:131026"),
    "92": ("EXPIRED", None),
    "93": ("RECEIVED", None),
    "94": ("SENT", None),
    "95": ("UNKNOWN", None),
    "96": ("ERROR", "whatsapp:131047"),
}
RCS = {
    "00": ("DELIVERED", None),
    "90": ("ERROR", "rbm:404"),
    "91": ("ERROR", "rbm:400"),
    "92": ("EXPIRED", "rbm:TTL_EXPIRATION_REVOKED"),
    "93": ("RECEIVED", None),
    "94": ("SENT", None),
    "95": ("UNKNOWN", None),
    "96": ("ERROR", "rbm:400"),
}


def settle(
    client: httpx.Client, channel: str, ids: list[str], seconds: float = 30
) -> dict[str, dict[str, object]]:
    """Poll until nothing is queued any more and nothing changed for 3 s (TTL events take ~2 s)."""
    deadline, last, stable_since = time.monotonic() + seconds, {}, time.monotonic()
    while time.monotonic() < deadline:
        items = client.post(f"{BASE}/messages/status/query", json={"channel": channel, "ids": ids}).json()
        current = {item["customerMessageId"]: item for item in items}
        queued = any(str(i["deliveryStatusDescription"]).startswith("Accepted, queued") for i in items)
        if current != last:
            last, stable_since = current, time.monotonic()
        elif not queued and time.monotonic() - stable_since > 3:
            return current
        time.sleep(0.25)
    raise AssertionError(f"{channel} statuses did not settle: {last}")


@pytest.mark.parametrize(("channel", "table"), [("WHATSAPP", WHATSAPP), ("RCS", RCS)])
def test_outcome_table(gateway: Gateway, channel: str, table: dict[str, tuple[str, str | None]]) -> None:
    path = "whatsapp" if channel == "WHATSAPP" else "rcs"
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as client:
        ids = {}
        for tail in table:
            body = {"to": f"+49151123457{tail}", "text": f"{channel} outcome {tail}", "validitySeconds": 60}
            response = client.post(f"{BASE}/{path}/messages", json=body)
            assert response.status_code == 202, response.text
            ids[tail] = response.json()["customerMessageId"]
        final = settle(client, channel, list(ids.values()))
    for tail, (status, code) in table.items():
        item = final[ids[tail]]
        assert item["deliveryStatus"] == status, (channel, tail, item)
        if code is not None:
            assert item["errorCode"] == code, (channel, tail, item)


def test_read_receipts_set_read_at(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as client:
        sent = client.post(f"{BASE}/rcs/messages", json={"to": "+4915112345801", "text": "read me"}).json()
        final = settle(client, "RCS", [sent["customerMessageId"]])[sent["customerMessageId"]]
    assert final["deliveryStatus"] == "DELIVERED"
    assert final["readAt"]


def test_rcs_falls_back_to_sms_end_to_end(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as client:
        sent = client.post(
            f"{BASE}/rcs/messages",
            json={
                "to": "+4915112345897",
                "text": "Parcel at the door",
                "fallbackSms": {"text": "Parcel at the door (SMS)"},
            },
        ).json()
        rcs_id = sent["customerMessageId"]
        final = settle(client, "RCS", [rcs_id])[rcs_id]
        assert final["deliveryStatus"] == "DELIVERED", final
        description = str(final["deliveryStatusDescription"])
        assert description.startswith("Sent as SMS msg_")
        sms_id = description.split()[3].rstrip(":")
        sms = client.get(f"{BASE}/messages/status/{sms_id}", params={"channel": "SMS"}).json()
        assert sms["deliveryStatus"] == "DELIVERED"
        rcs_timeline = client.get(f"{BASE}/messages/{rcs_id}/events", params={"channel": "RCS"}).json()[
            "events"
        ]
        sms_timeline = client.get(f"{BASE}/messages/{sms_id}/events", params={"channel": "SMS"}).json()[
            "events"
        ]
    assert any(
        sms_id in event["description"] for event in rcs_timeline if event["rawState"] == "FALLBACK_SMS"
    )
    assert any(
        rcs_id in event["description"] for event in sms_timeline if event["rawState"] == "FALLBACK_FOR"
    )


def test_rcs_falls_back_to_sms_when_rbm_revokes_it_after_the_asked_time(gateway: Gateway) -> None:
    """98: RBM takes the message and revokes it at its ttl (compressed by the simulator); the send
    asked for the fallback after 30 s, so the revocation sends the SMS instead of expiring it."""
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as client:
        sent = client.post(
            f"{BASE}/rcs/messages",
            json={
                "to": "+4915112345898",
                "text": "Your code is 1234",
                "reference": "otp-98",
                "fallbackSms": {"text": "Your code is 1234 (SMS)", "afterSeconds": 30},
            },
        ).json()
        rcs_id = sent["customerMessageId"]
        final = settle(client, "RCS", [rcs_id])[rcs_id]
        assert final["deliveryStatus"] == "DELIVERED", final
        sms_id = final["fallbackSms"]
        assert final["deliveryStatusDescription"] == f"Sent as SMS {sms_id}: Delivered to the handset"
        assert final["errorCode"] is None
        sms = client.get(f"{BASE}/messages/status/{sms_id}", params={"channel": "SMS"}).json()
        assert (sms["deliveryStatus"], sms["fallbackFor"], sms["reference"]) == (
            "DELIVERED",
            rcs_id,
            "otp-98",
        )
        rcs_timeline = client.get(f"{BASE}/messages/{rcs_id}/events", params={"channel": "RCS"}).json()[
            "events"
        ]
    revoked = [event for event in rcs_timeline if event["rawState"] == "TTL_EXPIRATION_REVOKED"]
    assert len(revoked) == 1
    assert revoked[0]["deliveryStatus"] is None
    assert revoked[0]["description"].endswith(f"; sent as SMS {sms_id} instead")
    assert [event["rawState"] for event in rcs_timeline].count("FALLBACK_SMS") == 1


def test_a_revocation_without_after_seconds_expires_the_message(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as client:
        sent = client.post(
            f"{BASE}/rcs/messages",
            json={"to": "+4915112345898", "text": "No fallback asked", "fallbackSms": {"text": "(SMS)"}},
        ).json()
        rcs_id = sent["customerMessageId"]
        final = settle(client, "RCS", [rcs_id])[rcs_id]
    assert (final["deliveryStatus"], final["errorCode"]) == ("EXPIRED", "rbm:TTL_EXPIRATION_REVOKED")
    assert "fallbackSms" not in final


def test_after_seconds_must_be_less_than_the_validity(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as client:
        response = client.post(
            f"{BASE}/rcs/messages",
            json={
                "to": "+4915112345898",
                "text": "x",
                "validitySeconds": 600,
                "fallbackSms": {"text": "(SMS)", "afterSeconds": 600},
            },
        )
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "field": "fallbackSms.afterSeconds",
            "message": "must be less than the message's validity (600 seconds)",
        }
    ]
