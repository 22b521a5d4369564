"""Send endpoints through the HTTP layer (SPEC §3.1)."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import func, select

from partner_gateway.runtime import Runtime
from partner_gateway.store.tables import message_events, messages, outbox
from support import BASE, Partner


async def test_sms_send_is_accepted_with_location_and_queued_status(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    response = await client.post(
        f"{BASE}/sms/messages",
        json={"to": "+4915112345678", "text": "Hello", "reference": "order-1234"},
        headers=partner.headers,
    )
    assert response.status_code == 202
    body = response.json()
    message_id = body["customerMessageId"]
    assert re.fullmatch(r"msg_[0-9A-HJKMNP-TV-Z]{26}", message_id)
    assert response.headers["location"] == f"{BASE}/messages/status/{message_id}?channel=SMS"
    assert body["deliveryStatus"] == "UNKNOWN"
    assert body["deliveryStatusDescription"] == "Accepted, queued for delivery"
    assert body["channel"] == "SMS"
    assert body["to"] == "+4915112345678"
    assert body["reference"] == "order-1234"
    assert body["errorCode"] is None
    assert body["encoding"] == "GSM7"
    assert body["segments"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["createdAt"])
    assert body["createdAt"] == body["updatedAt"]

    # The message, its first event and its outbox item were written together.
    async with runtime.database.read() as connection:
        assert (
            await connection.execute(select(messages.c.status).where(messages.c.id == message_id))
        ).scalar() == "UNKNOWN"
        assert (
            await connection.execute(select(func.count()).where(outbox.c.message_id == message_id))
        ).scalar() == 1
        events = (
            await connection.execute(
                select(message_events.c.raw_state).where(message_events.c.message_id == message_id)
            )
        ).all()
    assert [row[0] for row in events] == ["ACCEPTED"]

    looked_up = await client.get(response.headers["location"], headers=partner.headers)
    assert looked_up.status_code == 200
    assert looked_up.json() == body


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM7", 1),
        ("a" * 161, "GSM7", 2),
        ("€" * 80, "GSM7", 1),
        ("€" * 81, "GSM7", 2),
        ("Grüße 😀", "UCS2", 1),
        ("ж" * 71, "UCS2", 2),
    ],
)
async def test_sms_reports_encoding_and_segments(
    client: httpx.AsyncClient, partner: Partner, text: str, encoding: str, segments: int
) -> None:
    response = await client.post(
        f"{BASE}/sms/messages", json={"to": "+4915112345678", "text": text}, headers=partner.headers
    )
    assert response.status_code == 202, response.text
    assert (response.json()["encoding"], response.json()["segments"]) == (encoding, segments)


async def test_ids_are_unique(client: httpx.AsyncClient, partner: Partner) -> None:
    ids = set()
    for _ in range(50):
        response = await client.post(
            f"{BASE}/sms/messages", json={"to": "+4915112345678", "text": "x"}, headers=partner.headers
        )
        ids.add(response.json()["customerMessageId"])
    assert len(ids) == 50


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "hi"}, "to"),
        ({"to": "4915112345678", "text": "hi"}, "to"),
        ({"to": "+491511234567890", "text": "hi"}, "to"),
        ({"to": "+49abc", "text": "hi"}, "to"),
        ({"to": "+4915112345678"}, "text"),
        ({"to": "+4915112345678", "text": ""}, "text"),
        ({"to": "+4915112345678", "text": "a" * 1531}, "text"),
        ({"to": "+4915112345678", "text": "hi", "from": "TwelveLetter"}, "from"),
        ({"to": "+4915112345678", "text": "hi", "from": "12"}, "from"),
        ({"to": "+4915112345678", "text": "hi", "validitySeconds": 59}, "validitySeconds"),
        ({"to": "+4915112345678", "text": "hi", "validitySeconds": 604_801}, "validitySeconds"),
        ({"to": "+4915112345678", "text": "hi", "validitySeconds": "x"}, "validitySeconds"),
        ({"to": "+4915112345678", "text": "hi", "reference": "r" * 65}, "reference"),
        ({"to": "+4915112345678", "text": "hi", "callbackUrl": "ftp://x"}, "callbackUrl"),
        ({"to": "+4915112345678", "text": "hi", "surprise": 1}, "body"),
        ({"to": 4915112345678, "text": "hi"}, "to"),
    ],
)
async def test_sms_validation_problems_name_the_field(
    client: httpx.AsyncClient, partner: Partner, body: dict[str, object], field: str
) -> None:
    response = await client.post(f"{BASE}/sms/messages", json=body, headers=partner.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert problem["type"].endswith("/invalid-request")
    assert field in [error["field"] for error in problem["errors"]], problem


async def test_every_problem_of_a_request_is_reported_at_once(
    client: httpx.AsyncClient, partner: Partner
) -> None:
    response = await client.post(
        f"{BASE}/sms/messages",
        json={"to": "+12", "text": "", "validitySeconds": 1, "reference": "x" * 70},
        headers=partner.headers,
    )
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"to", "text", "validitySeconds", "reference"}


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b"", b'"text"', b"\xff\xfe", b'{"to": "+4915112345678", "text": "a\\ud800"}'],
)
async def test_malformed_bodies_are_400_problems(
    client: httpx.AsyncClient, partner: Partner, content: bytes
) -> None:
    response = await client.post(
        f"{BASE}/sms/messages",
        content=content,
        headers={**partner.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 400


async def test_body_too_large_is_413(client: httpx.AsyncClient, partner: Partner) -> None:
    response = await client.post(
        f"{BASE}/sms/messages",
        content=b'{"to": "+4915112345678", "text": "' + b"a" * 2_000_000 + b'"}',
        headers={**partner.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


async def test_whatsapp_text_and_template(client: httpx.AsyncClient, partner: Partner) -> None:
    text = await client.post(
        f"{BASE}/whatsapp/messages", json={"to": "+4915112345678", "text": "Hi"}, headers=partner.headers
    )
    assert text.status_code == 202, text.text
    assert text.json()["channel"] == "WHATSAPP"
    assert "encoding" not in text.json()
    template = await client.post(
        f"{BASE}/whatsapp/messages",
        json={
            "to": "+4915112345678",
            "template": {"name": "order_update", "language": "en_US", "parameters": ["1234", "today"]},
        },
        headers=partner.headers,
    )
    assert template.status_code == 202, template.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "+4915112345678"}, "text"),
        ({"to": "+4915112345678", "text": "a", "template": {"name": "x", "language": "en"}}, "text"),
        ({"to": "+4915112345678", "template": {"name": "Bad Name", "language": "en"}}, "template.name"),
        ({"to": "+4915112345678", "template": {"name": "ok", "language": "english!"}}, "template.language"),
        (
            {"to": "+4915112345678", "template": {"name": "ok", "language": "en", "parameters": [""]}},
            "template.parameters[0]",
        ),
        ({"to": "+4915112345678", "text": "a" * 4097}, "text"),
    ],
)
async def test_whatsapp_validation(
    client: httpx.AsyncClient, partner: Partner, body: dict[str, object], field: str
) -> None:
    response = await client.post(f"{BASE}/whatsapp/messages", json=body, headers=partner.headers)
    assert response.status_code == 400, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_rcs_text_with_suggestions_rich_card_and_fallback(
    client: httpx.AsyncClient, partner: Partner
) -> None:
    plain = await client.post(
        f"{BASE}/rcs/messages",
        json={
            "to": "+4915112345678",
            "text": "Your parcel is on its way",
            "suggestions": [
                {"type": "reply", "text": "Thanks", "postbackData": "thanks"},
                {"type": "dial", "text": "Call us", "phoneNumber": "+4930123456"},
                {"type": "openUrl", "text": "Track", "url": "https://example.com/track"},
            ],
            "fallbackSms": {"text": "Your parcel is on its way", "from": "ACME"},
        },
        headers=partner.headers,
    )
    assert plain.status_code == 202, plain.text
    card = await client.post(
        f"{BASE}/rcs/messages",
        json={
            "to": "+4915112345678",
            "richCard": {"title": "Sale", "description": "50% off", "mediaUrl": "https://example.com/a.png"},
        },
        headers=partner.headers,
    )
    assert card.status_code == 202, card.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "+4915112345678"}, "text"),
        ({"to": "+4915112345678", "text": "a", "richCard": {"title": "t"}}, "text"),
        ({"to": "+4915112345678", "richCard": {}}, "richCard"),
        (
            {"to": "+4915112345678", "text": "a", "suggestions": [{"type": "dial", "text": "Call"}]},
            "suggestions[0].phoneNumber",
        ),
        (
            {
                "to": "+4915112345678",
                "text": "a",
                "suggestions": [{"type": "openUrl", "text": "Go", "url": "nope"}],
            },
            "suggestions[0].url",
        ),
        ({"to": "+4915112345678", "text": "a", "fallbackSms": {"text": ""}}, "fallbackSms.text"),
    ],
)
async def test_rcs_validation(
    client: httpx.AsyncClient, partner: Partner, body: dict[str, object], field: str
) -> None:
    response = await client.post(f"{BASE}/rcs/messages", json=body, headers=partner.headers)
    assert response.status_code == 400, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_idempotent_retry_returns_the_first_answer_and_stores_once(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    headers = {**partner.headers, "Idempotency-Key": "order-1234-attempt"}
    body = {"to": "+4915112345678", "text": "Hello"}
    first = await client.post(f"{BASE}/sms/messages", json=body, headers=headers)
    second = await client.post(f"{BASE}/sms/messages", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"]
    async with runtime.database.read() as connection:
        assert (await connection.execute(select(func.count()).select_from(messages))).scalar() == 1
        assert (await connection.execute(select(func.count()).select_from(outbox))).scalar() == 1


async def test_idempotency_key_with_a_different_body_is_refused(
    client: httpx.AsyncClient, partner: Partner
) -> None:
    headers = {**partner.headers, "Idempotency-Key": "k1"}
    await client.post(f"{BASE}/sms/messages", json={"to": "+4915112345678", "text": "A"}, headers=headers)
    again = await client.post(
        f"{BASE}/sms/messages", json={"to": "+4915112345678", "text": "B"}, headers=headers
    )
    assert again.status_code == 422
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["type"].endswith("/idempotency-key-reused")


async def test_idempotency_keys_are_scoped_to_the_company(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner
) -> None:
    body = {"to": "+4915112345678", "text": "A"}
    first = await client.post(
        f"{BASE}/sms/messages", json=body, headers={**partner.headers, "Idempotency-Key": "same"}
    )
    other = await client.post(
        f"{BASE}/sms/messages", json=body, headers={**other_partner.headers, "Idempotency-Key": "same"}
    )
    assert first.status_code == other.status_code == 202
    assert first.json()["customerMessageId"] != other.json()["customerMessageId"]


async def test_idempotency_key_too_long_is_400(client: httpx.AsyncClient, partner: Partner) -> None:
    response = await client.post(
        f"{BASE}/sms/messages",
        json={"to": "+4915112345678", "text": "A"},
        headers={**partner.headers, "Idempotency-Key": "k" * 256},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_nul_characters_are_refused_by_field(client: httpx.AsyncClient, partner: Partner) -> None:
    response = await client.post(
        f"{BASE}/rcs/messages",
        json={"to": "+4915112345678", "text": "a\x00b", "suggestions": [{"type": "reply", "text": "\x00"}]},
        headers=partner.headers,
    )
    assert response.status_code == 400
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"text", "suggestions[0].text"} <= fields
