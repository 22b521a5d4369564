"""The front (api/front.py) and the framework's declared handlers answer alike: the single and the
batch look-up, and the sends.

Every request below is sent twice: to the app as served (the front answers it) and to the
Litestar app behind it (its declared handler answers it). Status, headers a partner reads, and
the body must be the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from partner_gateway.api.app import create_app
from partner_gateway.api.front import PartnerApi
from partner_gateway.config import Settings
from partner_gateway.observability import context
from partner_gateway.runtime import Runtime
from support import Partner, seed

BASE = "/partner-gateway/v1"
T0 = 1_795_000_000_000
COMPARED_HEADERS = ("content-type", "www-authenticate", "retry-after")
REQUEST_ID = "parity-check-1"  # both sides' problems carry it: the front's from the header


def with_request_context(framework: Any) -> Any:
    """The framework behind the front, with the request context the front would give it."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        token = context.enter(context.RequestContext(REQUEST_ID))
        try:
            await framework(scope, receive, send)
        finally:
            context.leave(token)

    return app


@pytest.fixture
async def both(
    settings: Settings, runtime: Runtime
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    app = create_app(settings, runtime)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as served,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=with_request_context(app.framework)),
            base_url="http://gateway.test",
        ) as framework,
    ):
        yield served, framework


async def assert_alike(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], path: str, headers: dict[str, str]
) -> httpx.Response:
    served, framework = both
    headers = {**headers, "X-Request-Id": REQUEST_ID}
    front_answer = await served.get(path, headers=headers)
    framework_answer = await framework.get(path, headers=headers)
    assert front_answer.status_code == framework_answer.status_code, (
        front_answer.text,
        framework_answer.text,
    )
    for name in COMPARED_HEADERS:
        assert front_answer.headers.get(name) == framework_answer.headers.get(name), name
    assert front_answer.json() == framework_answer.json()
    assert front_answer.content == framework_answer.content
    assert int(front_answer.headers["content-length"]) == len(front_answer.content)
    return front_answer


async def test_found_messages_are_answered_alike(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], runtime: Runtime, partner: Partner
) -> None:
    [sms] = await seed(runtime, partner.company_id, [T0], status="DELIVERED")
    [rcs] = await seed(runtime, partner.company_id, [T0 + 1], channel="RCS")
    answer = await assert_alike(both, f"{BASE}/messages/status/{sms}?channel=SMS", partner.headers)
    assert answer.status_code == 200
    assert answer.json()["customerMessageId"] == sms
    assert answer.json()["deliveryStatus"] == "DELIVERED"
    answer = await assert_alike(both, f"{BASE}/messages/status/{rcs}?channel=RCS", partner.headers)
    assert answer.json()["channel"] == "RCS"
    answer = await assert_alike(both, f"{BASE}/messages/status/{rcs}?channel=RCS&other=1", partner.headers)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "other"


@pytest.mark.parametrize(
    ("suffix", "status"),
    [
        ("?channel=SMS", 404),  # another company's message
        ("?channel=RCS", 404),  # the right message on another channel
        ("", 400),  # no channel
        ("?channel=", 400),
        ("?channel=sms", 400),
        ("?channel=FAX", 400),
        ("?channel=SMS&channel=RCS", 400),  # repeated: refused, not the last taken
        ("?channel=SMS&Channel=SMS", 400),  # names are case-sensitive: Channel is unknown
    ],
)
async def test_problems_are_answered_alike(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
    runtime: Runtime,
    partner: Partner,
    other_partner: Partner,
    suffix: str,
    status: int,
) -> None:
    [theirs] = await seed(runtime, other_partner.company_id, [T0])
    answer = await assert_alike(both, f"{BASE}/messages/status/{theirs}{suffix}", partner.headers)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "message_id", ["msg_unknown", "not-an-id", "msg_%F0%9F%98%80", "%20msg_x", "x" * 300, "msg%2Fx"]
)
async def test_unknown_and_malformed_ids_are_answered_alike(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], partner: Partner, message_id: str
) -> None:
    answer = await assert_alike(both, f"{BASE}/messages/status/{message_id}?channel=SMS", partner.headers)
    assert answer.status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer pgw_unknown"},
        {"Authorization": "Bearer " + "k" * 201},
    ],
)
async def test_keys_are_checked_alike(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], headers: dict[str, str]
) -> None:
    answer = await assert_alike(both, f"{BASE}/messages/status/msg_x?channel=SMS", headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="partner-gateway"'


async def test_other_forms_of_the_path_reach_the_framework(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], runtime: Runtime, partner: Partner
) -> None:
    served, _framework = both
    [sms] = await seed(runtime, partner.company_id, [T0])
    trailing = await served.get(f"{BASE}/messages/status/{sms}/?channel=SMS", headers=partner.headers)
    assert trailing.status_code == 200
    assert trailing.json()["customerMessageId"] == sms
    wrong_method = await served.delete(f"{BASE}/messages/status/{sms}?channel=SMS", headers=partner.headers)
    assert wrong_method.status_code == 405
    events = await served.get(f"{BASE}/messages/{sms}/events?channel=SMS", headers=partner.headers)
    assert events.status_code == 200


async def test_batches_are_answered_alike(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
    runtime: Runtime,
    partner: Partner,
    other_partner: Partner,
) -> None:
    first, second = await seed(runtime, partner.company_id, [T0, T0 + 1], status="DELIVERED")
    [rcs] = await seed(runtime, partner.company_id, [T0 + 2], channel="RCS")
    [theirs] = await seed(runtime, other_partner.company_id, [T0 + 3])
    listed = f"{second},{first},{second},{rcs},{theirs},msg_unknown"
    answer = await assert_alike(both, f"{BASE}/messages/status?ids={listed}&channel=SMS", partner.headers)
    assert sorted(item["customerMessageId"] for item in answer.json()) == sorted([second, first])
    reordered = await assert_alike(both, f"{BASE}/messages/status?channel=RCS&ids={listed}", partner.headers)
    assert [item["customerMessageId"] for item in reordered.json()] == [rcs]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("ids={first}&channel=SMS", 200),
        ("ids=%20{first}%2C,,{first}&channel=SMS", 200),  # escapes: the framework decodes them
        ("ids=+{first}&channel=SMS", 200),  # "+" is a space
        ("ids={first},,not%20an%20id,&channel=SMS", 200),  # the impossible ones are dropped
        ("ids={first},x!y&channel=SMS", 200),
        ("ids=&channel=SMS", 400),
        ("ids=,%20,&channel=SMS", 400),
        ("ids=,,&channel=SMS", 400),
        ("ids={first}", 400),  # no channel
        ("ids={first}&channel=", 400),
        ("ids={first}&channel=sms", 400),
        ("ids={first}&channel=SMS&channel=RCS", 400),  # repeated: refused, naming it
        ("ids={first}&ids=msg_x&channel=SMS", 400),
        ("ids={first}&channel=SMS&other=1", 400),  # unknown: refused, naming it
        ("channel=SMS", 400),  # no ids
        ("", 400),
        ("ids={first}&channel=SMS&", 200),
        ("ids={first}&&channel=SMS", 200),
        ("ids&channel=SMS", 400),
        ("ids={first}&channel=SM%C3%89", 400),
    ],
)
async def test_batch_query_forms_are_answered_alike(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
    runtime: Runtime,
    partner: Partner,
    query: str,
    status: int,
) -> None:
    [first] = await seed(runtime, partner.company_id, [T0])
    answer = await assert_alike(both, f"{BASE}/messages/status?{query.format(first=first)}", partner.headers)
    assert answer.status_code == status, answer.text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer pgw_unknown"}])
async def test_batch_keys_are_checked_alike(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], headers: dict[str, str]
) -> None:
    answer = await assert_alike(both, f"{BASE}/messages/status?ids=msg_x&channel=SMS", headers)
    assert answer.status_code == 401


def comparable(answer: httpx.Response) -> tuple[int, dict[str, str | None], object]:
    """An answer without what differs from one accepted message to the next (id, times)."""
    headers = {name: answer.headers.get(name) for name in (*COMPARED_HEADERS, "idempotent-replayed")}
    body = answer.json()
    if answer.status_code == 202:
        assert body.pop("customerMessageId").startswith("msg_")
        assert body.pop("createdAt") == body.pop("updatedAt")
        assert answer.headers["location"].startswith(f"{BASE}/messages/status/msg_")
    return answer.status_code, headers, body


SENDS = [
    ("sms", {"to": "+4915112345678", "text": "Hello"}, 202),
    ("sms", {"to": "+4915112345678", "text": "Grüße 😀", "from": "Acme", "reference": "r-1"}, 202),
    ("whatsapp", {"to": "+4915112345678", "text": "Hi"}, 202),
    ("whatsapp", {"to": "+4915112345678", "template": {"name": "otp", "language": "en_US"}}, 202),
    ("rcs", {"to": "+4915112345678", "text": "Hi", "suggestions": [{"type": "reply", "text": "OK"}]}, 202),
    ("sms", {"to": "12", "text": "Hello"}, 400),  # decodes; our own checks refuse it
    ("sms", {"to": "+4915112345678", "text": ""}, 400),
    ("whatsapp", {"to": "+4915112345678", "text": "a", "template": {"name": "t", "language": "en"}}, 400),
    ("sms", {"to": "+4915112345678"}, 400),  # does not decode: the framework answers
    ("sms", {"to": "+4915112345678", "text": "x", "colour": "red"}, 400),
    ("sms", {"to": 4915112345678, "text": "x"}, 400),
    ("rcs", {"to": "+4915112345678", "suggestions": [{"type": "wave", "text": "x"}]}, 400),
]


@pytest.mark.parametrize(("channel", "body", "status"), SENDS)
async def test_sends_are_answered_alike(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
    partner: Partner,
    channel: str,
    body: dict[str, object],
    status: int,
) -> None:
    served, framework = both
    path = f"{BASE}/{channel}/messages"
    headers = {**partner.headers, "X-Request-Id": REQUEST_ID}
    front_answer = await served.post(path, json=body, headers=headers)
    framework_answer = await framework.post(path, json=body, headers=headers)
    assert front_answer.status_code == status, front_answer.text
    assert comparable(front_answer) == comparable(framework_answer)


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"", {}, 400),
        (b"null", {}, 400),
        (b"{not json", {}, 400),
        (b'{"to": "+4915112345678", "text": "x"}', {"Content-Type": "text/plain"}, 415),
        (b'{"to": "+4915112345678", "text": "x"}', {"Content-Type": ""}, 415),
        (
            b'{"to": "+4915112345678", "text": "x"}',
            {"Content-Type": "application/json; charset=latin-1"},
            415,
        ),
        (b'{"to": "+4915112345678", "text": "x"}', {"Content-Type": "application/vnd.acme+json"}, 202),
        (b'{"to": "+4915112345678", "text": "x"}', {"Content-Type": "Application/JSON; Charset=UTF-8"}, 202),
        (b'{"to": "+4915112345678", "text": "x", "text": "y"}', {}, 400),  # a key given twice
        (b'{"to": "+4915112345678", "t\\u0065xt": "x", "text": "y"}', {}, 400),  # the same key, escaped
        (b'{"to": "+4915112345678", "text": "x", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", {}, 400),
        (b'{"to": "+4915112345678", "text": "x"}', {"Authorization": "Bearer pgw_unknown"}, 401),
        (b'{"to": "+4915112345678", "text": "x"}', {"Authorization": ""}, 401),
        (b'{"to": "+4915112345678", "text": "' + b"x" * 1_100_000 + b'"}', {}, 413),  # over the 1 MiB limit
    ],
)
async def test_odd_sends_are_answered_alike(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
    partner: Partner,
    content: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    served, framework = both
    sent = {"Content-Type": "application/json", "X-Request-Id": REQUEST_ID, **partner.headers, **headers}
    front_answer = await served.post(f"{BASE}/sms/messages", content=content, headers=sent)
    framework_answer = await framework.post(f"{BASE}/sms/messages", content=content, headers=sent)
    assert front_answer.status_code == status, front_answer.text
    assert comparable(front_answer) == comparable(framework_answer)


async def test_idempotent_sends_replay_and_conflict_alike(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], partner: Partner
) -> None:
    served, framework = both
    path = f"{BASE}/sms/messages"
    headers = {**partner.headers, "Idempotency-Key": "order-42"}
    first = await served.post(path, json={"to": "+4915112345678", "text": "Hi"}, headers=headers)
    assert first.status_code == 202
    for client in (served, framework):
        again = await client.post(path, json={"to": "+4915112345678", "text": "Hi"}, headers=headers)
        assert again.status_code == 202
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        conflict = await client.post(path, json={"to": "+4915112345678", "text": "Bye"}, headers=headers)
        assert conflict.status_code == 422
        assert conflict.json()["type"].endswith("idempotency-key-reused")


async def test_the_front_answers_the_plain_forms_itself(runtime: Runtime, partner: Partner) -> None:
    """The forms the front claims never reach the framework; the others all do."""
    reached: list[str] = []

    async def framework(scope: dict[str, Any], _receive: Any, send: Any) -> None:
        reached.append(f"{scope['path']}?{scope['query_string'].decode()}")
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    front = PartnerApi(framework, lambda: runtime, BASE, max_body_bytes=1_048_576)
    [sms] = await seed(runtime, partner.company_id, [T0])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=front), base_url="http://gateway.test"
    ) as client:
        for path in (
            f"/messages/status/{sms}?channel=SMS",
            f"/messages/status?ids={sms},msg_x&channel=SMS",
            f"/messages/status?channel=SMS&ids={sms}",
            f"/messages/status?ids={sms}",  # no channel: the 400 is the front's too
        ):
            answer = await client.get(BASE + path, headers=partner.headers)
            assert answer.status_code != 418, path
        sent = await client.post(
            f"{BASE}/sms/messages", json={"to": "+4915112345678", "text": "x"}, headers=partner.headers
        )
        assert sent.status_code == 202
        assert reached == []
        for path in (
            f"/messages/status?ids={sms}%2Cmsg_x&channel=SMS",
            f"/messages/status?ids={sms}&channel=SMS&other=1",
            "/messages/status?channel=SMS",
            f"/messages/status/{sms}/?channel=SMS",
        ):
            answer = await client.get(BASE + path, headers=partner.headers)
            assert answer.status_code == 418, path
    assert len(reached) == 4
