"""Bad input of every kind is a clean problem answer (issue 17): nesting and collection bounds on
every endpoint that reads a body (webhooks signed and unsigned), JSON media types, keys given
twice, undeclared and repeated query parameters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from fixtures.rcs.rbm_kit import CLIENT_TOKEN, fixture_bytes, make_settings, push_body, signed
from partner_gateway.api.app import create_app
from partner_gateway.channels.rcs.provider import RbmProvider
from partner_gateway.channels.whatsapp.provider import WhatsAppProvider
from partner_gateway.channels.whatsapp.settings import WhatsAppSettings
from partner_gateway.config import Settings
from partner_gateway.runtime import Runtime
from support import BASE, Partner

APP_SECRET = "app-secret-for-bad-input"
DEEP = b"[" * 1000 + b"]" * 1000  # 2 KB: a RecursionError in every JSON decoder we use
DEEP_FIELD = b'{"to": "+4915112345678", "text": "x", "x": ' + DEEP + b"}"
WHATSAPP_FIXTURES = "tests/fixtures/whatsapp"


def whatsapp_signed(body: bytes) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    }


@pytest.fixture
async def gateway(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The app as served, with the WhatsApp and RBM webhooks of real providers mounted."""
    whatsapp = WhatsAppProvider(
        WhatsAppSettings(
            phone_number_id="106540352242922",
            access_token=SecretStr("token"),
            app_secret=SecretStr(APP_SECRET),
            verify_token=SecretStr("verify"),
        )
    )
    rbm = RbmProvider(make_settings())
    routes = [*whatsapp.webhook_routes(), *rbm.webhook_routes()]
    transport = httpx.ASGITransport(app=create_app(settings, runtime, webhooks=routes))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


def assert_problem(answer: httpx.Response, status: int) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status
    assert body["type"].startswith("https://partner-gateway.dev/problems/")
    assert "Traceback" not in answer.text
    assert "Recursion" not in answer.text
    return dict(body)


BODY_ENDPOINTS = [
    ("POST", f"{BASE}/sms/messages"),
    ("POST", f"{BASE}/rcs/messages"),
    ("POST", f"{BASE}/whatsapp/messages"),
    ("POST", f"{BASE}/messages/status/query"),
    ("PUT", f"{BASE}/callbacks/settings"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
@pytest.mark.parametrize("body", [DEEP, DEEP_FIELD], ids=["deep-body", "deep-field"])
@pytest.mark.parametrize("authenticated", [True, False], ids=["with-key", "without-key"])
async def test_deep_nesting_is_400_on_every_partner_endpoint(
    gateway: httpx.AsyncClient, partner: Partner, method: str, path: str, body: bytes, authenticated: bool
) -> None:
    headers = {"Content-Type": "application/json", **(partner.headers if authenticated else {})}
    problem = assert_problem(await gateway.request(method, path, content=body, headers=headers), 400)
    [error] = problem["errors"]  # type: ignore[misc]
    assert error["message"] == "nests deeper than 32 levels"
    assert error["field"] == ("body" if body is DEEP else "x")


@pytest.mark.parametrize("signature", ["signed", "unsigned"])
@pytest.mark.parametrize("body", [DEEP, b'{"object": "whatsapp_business_account", "entry": ' + DEEP + b"}"])
async def test_deep_nesting_is_400_on_the_whatsapp_webhook(
    gateway: httpx.AsyncClient, signature: str, body: bytes
) -> None:
    headers = whatsapp_signed(body) if signature == "signed" else {}
    assert_problem(await gateway.post("/webhooks/whatsapp", content=body, headers=headers), 400)


def deep_envelope() -> bytes:
    return b'{"message": {"data": "e30=", "attributes": ' + DEEP + b"}}"


@pytest.mark.parametrize("signature", ["signed", "unsigned"])
@pytest.mark.parametrize("where", ["body", "envelope", "event"])
async def test_deep_nesting_is_400_on_the_rcs_webhook(
    gateway: httpx.AsyncClient, signature: str, where: str
) -> None:
    event = b'{"eventType": "DELIVERED", "messageId": "m", "x": ' + DEEP + b"}"
    body, signed_data = {
        "body": (DEEP, b"{}"),
        "envelope": (deep_envelope(), b"{}"),
        "event": (push_body(event), event),  # the signature holds: the event inside is refused
    }[where]
    headers = signed(signed_data) if signature == "signed" else {}
    answer = await gateway.post("/webhooks/rcs", content=body, headers=headers)
    if where == "event" and signature == "unsigned":
        assert_problem(answer, 401)  # the event is never parsed before its signature holds
    else:
        assert_problem(answer, 400)


async def test_webhooks_answer_one_error_shape(gateway: httpx.AsyncClient) -> None:
    whatsapp = assert_problem(await gateway.post("/webhooks/whatsapp", content=b"{}"), 401)
    rcs = assert_problem(await gateway.post("/webhooks/rcs", content=push_body(b"{}")), 401)
    assert set(whatsapp) == set(rcs) == {"type", "title", "status", "detail"}
    assert whatsapp["type"] == rcs["type"] == "https://partner-gateway.dev/problems/webhook-bad-signature"
    refused = await gateway.get(
        "/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": "no"}
    )
    assert_problem(refused, 403)


async def test_real_webhooks_still_pass_the_bounds(gateway: httpx.AsyncClient) -> None:
    with open(f"{WHATSAPP_FIXTURES}/batch.json", "rb") as batch:
        raw = batch.read()
    # No sink: the statuses are read and found, then answered 503 (not started), not 400.
    assert (
        await gateway.post("/webhooks/whatsapp", content=raw, headers=whatsapp_signed(raw))
    ).status_code == 503
    data = fixture_bytes("delivered.json")
    assert (
        await gateway.post("/webhooks/rcs", content=push_body(data), headers=signed(data))
    ).status_code == 503


async def test_the_rbm_handshake_names_its_charset_once(gateway: httpx.AsyncClient) -> None:
    handshake = json.dumps({"clientToken": CLIENT_TOKEN, "secret": "1234567890"}).encode()
    answer = await gateway.post(
        "/webhooks/rcs", content=handshake, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 200
    assert answer.headers.get_list("content-type") == ["text/plain; charset=utf-8"]
    assert answer.content == b"1234567890"


async def test_a_collection_over_its_bound_is_refused_before_it_is_decoded(
    gateway: httpx.AsyncClient, partner: Partner
) -> None:
    ids = ",".join(['"msg_x"'] * 10_001)
    body = f'{{"channel": "SMS", "ids": [{ids}]}}'.encode()
    problem = assert_problem(
        await gateway.post(
            f"{BASE}/messages/status/query",
            content=body,
            headers={**partner.headers, "Content-Type": "application/json"},
        ),
        400,
    )
    assert problem["errors"] == [{"field": "ids", "message": "must hold at most 10000 items"}]


@pytest.mark.parametrize(("count", "status"), [(100, 202), (101, 400), (100_000, 400)])
async def test_whatsapp_template_parameters_are_bounded(
    gateway: httpx.AsyncClient, partner: Partner, count: int, status: int
) -> None:
    template = {"name": "otp", "language": "en_US", "parameters": ["p"] * count}
    answer = await gateway.post(
        f"{BASE}/whatsapp/messages",
        json={"to": "+4915112345678", "template": template},
        headers=partner.headers,
    )
    assert answer.status_code == status, answer.text
    if status == 400:
        [error] = answer.json()["errors"]
        assert error["field"] == "template.parameters"
        assert "at most" in error["message"]


WRONG_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/json; charset=iso-8859-1",
]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
@pytest.mark.parametrize("content_type", WRONG_TYPES)
async def test_a_body_not_declared_json_is_415(
    gateway: httpx.AsyncClient, partner: Partner, method: str, path: str, content_type: str | None
) -> None:
    headers = dict(partner.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = b'{"channel": "SMS", "ids": ["msg_x"], "to": "+4915112345678", "text": "x", "url": null}'
    problem = assert_problem(await gateway.request(method, path, content=body, headers=headers), 415)
    assert problem["type"] == "https://partner-gateway.dev/problems/unsupported-media-type"
    assert "application/json" in str(problem["detail"])


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", f"{BASE}/sms/messages", b'{"to": "+4915112345678", "text": "a", "text": "b"}', "text"),
        (
            "POST",
            f"{BASE}/messages/status/query",
            b'{"channel": "SMS", "channel": "RCS", "ids": ["x"]}',
            "channel",
        ),
        ("PUT", f"{BASE}/callbacks/settings", b'{"url": null, "url": "https://example.com"}', "url"),
        (
            "POST",
            f"{BASE}/whatsapp/messages",
            b'{"to": "+4915112345678", "template": {"name": "a", "name": "b", "language": "en"}}',
            "template.name",
        ),
    ],
)
async def test_a_key_given_twice_is_400_naming_it(
    gateway: httpx.AsyncClient, partner: Partner, method: str, path: str, body: bytes, field: str
) -> None:
    headers = {**partner.headers, "Content-Type": "application/json"}
    problem = assert_problem(await gateway.request(method, path, content=body, headers=headers), 400)
    assert problem["errors"] == [{"field": field, "message": "is given twice; name each field once"}]


@pytest.mark.parametrize(
    ("path", "field", "says"),
    [
        ("/messages/history?deliverystatus=ERROR", "deliverystatus", "is not a parameter"),
        ("/messages/history?channel=SMS&channel=RCS", "channel", "is given 2 times"),
        ("/messages/history?limit=5&limit=6&limit=7", "limit", "is given 3 times"),
        ("/messages/status?ids=a&ids=b&channel=SMS", "ids", "is given 2 times"),
        ("/messages/status?ids=a&channel=SMS&chanel=RCS", "chanel", "is not a parameter"),
        ("/messages/status/msg_x?channel=SMS&channel=RCS", "channel", "is given 2 times"),
        ("/messages/status/msg_x?channel=SMS&verbose=1", "verbose", "is not a parameter"),
        ("/messages/msg_x/events?channel=SMS&channel=SMS", "channel", "is given 2 times"),
        ("/callbacks/settings?url=x", "url", "is not a parameter"),
        ("/messages/status/query?channel=SMS", "channel", "is not a parameter"),
    ],
)
async def test_undeclared_and_repeated_query_parameters_are_400_naming_them(
    gateway: httpx.AsyncClient, partner: Partner, path: str, field: str, says: str
) -> None:
    method = "POST" if path.startswith("/messages/status/query") else "GET"
    answer = await gateway.request(
        method,
        BASE + path,
        headers=partner.headers,
        json={"channel": "SMS", "ids": ["x"]} if method == "POST" else None,
    )
    problem = assert_problem(answer, 400)
    fields = {error["field"]: error["message"] for error in problem["errors"]}  # type: ignore[attr-defined]
    assert says in fields[field], fields


async def test_an_unknown_parameter_lists_the_known_ones(
    gateway: httpx.AsyncClient, partner: Partner
) -> None:
    answer = await gateway.get(f"{BASE}/messages/history?deliverystatus=ERROR", headers=partner.headers)
    [error] = assert_problem(answer, 400)["errors"]  # type: ignore[misc]
    assert error["message"] == (
        "is not a parameter of this operation "
        "(its parameters: channel, cursor, deliveryStatus, endDate, limit, startDate, to)"
    )


async def test_a_send_with_a_query_is_answered_by_the_framework_alike(
    gateway: httpx.AsyncClient, partner: Partner
) -> None:
    answer = await gateway.post(
        f"{BASE}/sms/messages?dryRun=true",
        json={"to": "+4915112345678", "text": "x"},
        headers=partner.headers,
    )
    [error] = assert_problem(answer, 400)["errors"]  # type: ignore[misc]
    assert error["field"] == "dryRun"


def test_deep_payload_is_small() -> None:
    assert len(DEEP) == 2000
    assert base64.b64decode("e30=") == b"{}"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"to": "+4915112345678"}, "text", "is required unless template is given"),
        (
            {"to": "+4915112345678", "text": "a", "template": {"name": "t", "language": "en"}},
            "text",
            "not both",
        ),
    ],
)
async def test_whatsapp_says_what_is_missing(
    gateway: httpx.AsyncClient, partner: Partner, body: dict[str, object], field: str, message: str
) -> None:
    answer = await gateway.post(f"{BASE}/whatsapp/messages", json=body, headers=partner.headers)
    errors = {error["field"]: error["message"] for error in assert_problem(answer, 400)["errors"]}  # type: ignore[attr-defined]
    assert message in errors[field]


async def test_rcs_says_what_is_missing(gateway: httpx.AsyncClient, partner: Partner) -> None:
    answer = await gateway.post(
        f"{BASE}/rcs/messages", json={"to": "+4915112345678"}, headers=partner.headers
    )
    errors = {error["field"]: error["message"] for error in assert_problem(answer, 400)["errors"]}  # type: ignore[attr-defined]
    assert errors["text"].startswith("is required unless richCard is given")


@pytest.mark.parametrize("escaped", [b"\\ud83d", b"\\ude00 x", b"ok \\ud83d\\u0041"])
async def test_a_lone_surrogate_is_named_not_called_truncated(
    gateway: httpx.AsyncClient, partner: Partner, escaped: bytes
) -> None:
    body = b'{"to": "+4915112345678", "text": "' + escaped + b'"}'
    answer = await gateway.post(
        f"{BASE}/sms/messages", content=body, headers={**partner.headers, "Content-Type": "application/json"}
    )
    [error] = assert_problem(answer, 400)["errors"]  # type: ignore[misc]
    assert error["field"] == "text"
    assert "unpaired UTF-16 surrogate" in error["message"]
    assert "truncated" not in answer.text


@pytest.mark.parametrize(
    "path",
    [
        "/messages/status?ids=msg_x&channel=SMS",
        "/messages/status/msg_x?channel=SMS",
        "/messages/msg_x/events?channel=SMS",
        "/messages/history?limit=5",
    ],
)
async def test_options_with_a_query_is_answered(
    gateway: httpx.AsyncClient, partner: Partner, path: str
) -> None:
    answer = await gateway.request("OPTIONS", BASE + path, headers=partner.headers)
    assert answer.status_code == 204, answer.text
    assert "GET" in answer.headers["allow"]
    # and the guard's memory survives a handler it sees as a fresh copy each time
    again = await gateway.get(BASE + path, headers=partner.headers)
    assert again.status_code in (200, 404), again.text


@pytest.mark.parametrize(
    ("query", "field"), [("startDate=", "startDate"), ("endDate=", "endDate"), ("channel=", "channel")]
)
async def test_an_empty_history_filter_is_400_not_ignored(
    gateway: httpx.AsyncClient, partner: Partner, query: str, field: str
) -> None:
    answer = await gateway.get(f"{BASE}/messages/history?{query}", headers=partner.headers)
    [error] = assert_problem(answer, 400)["errors"]  # type: ignore[misc]
    assert error["field"] == field


async def test_an_impossible_destination_filter_matches_nothing(
    gateway: httpx.AsyncClient, partner: Partner
) -> None:
    """E.164-shaped but no possible number: no message went there (a send to it is refused)."""
    await gateway.post(
        f"{BASE}/sms/messages", json={"to": "+4915112345678", "text": "x"}, headers=partner.headers
    )
    answer = await gateway.get(f"{BASE}/messages/history?to=%2B1000000", headers=partner.headers)
    assert answer.status_code == 200
    assert answer.json()["items"] == []
    assert_problem(await gateway.get(f"{BASE}/messages/history?to=12", headers=partner.headers), 400)
