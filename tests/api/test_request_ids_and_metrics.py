"""Request ids, the HTTP metrics, who may read /metrics, and the access log, on the served app
(the front's routes and Litestar's alike)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from partner_gateway.api.app import create_app
from partner_gateway.config import Settings
from partner_gateway.observability.metrics import HTTP
from partner_gateway.runtime import Runtime
from support import BASE, Partner, seed

STATUS_ROUTE = f"{BASE}/messages/status/{{customerMessageId}}"
T0 = 1_795_000_000_000


def client_for(settings: Settings, runtime: Runtime, address: str = "127.0.0.1") -> httpx.AsyncClient:
    app = create_app(settings, runtime)
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")


@pytest.mark.parametrize(
    "path",
    [
        f"{BASE}/messages/status/msg_unknown?channel=SMS",  # the front: a 404 problem
        f"{BASE}/messages/history?limit=0",  # Litestar: a 400 problem
        f"{BASE}/nowhere",  # no route: Litestar's 404
    ],
)
async def test_a_request_id_is_echoed_in_the_header_and_the_problem(
    client: httpx.AsyncClient, partner: Partner, path: str
) -> None:
    given = "trace-42.a:b/c=d+e@f~g_h"
    answer = await client.get(path, headers={**partner.headers, "X-Request-Id": given})
    assert answer.status_code in (400, 404)
    assert answer.headers["x-request-id"] == given
    assert answer.json()["requestId"] == given


@pytest.mark.parametrize("given", [None, "", "x" * 129, "has space", 'quote"d', "é".encode(), b"a\x00b"])
async def test_a_missing_or_unacceptable_request_id_is_replaced_by_a_new_one(
    client: httpx.AsyncClient, partner: Partner, given: str | bytes | None
) -> None:
    headers: dict[str, str | bytes] = dict(partner.headers)
    if given is not None:
        headers["X-Request-Id"] = given
    first = await client.get(f"{BASE}/messages/status/msg_x?channel=SMS", headers=headers)
    second = await client.get(f"{BASE}/messages/status/msg_x?channel=SMS", headers=headers)
    made = first.headers["x-request-id"]
    assert len(made) == 32
    assert int(made, 16) >= 0
    assert made != second.headers["x-request-id"]
    assert first.json()["requestId"] == made


async def test_a_successful_answer_carries_the_request_id_too(
    client: httpx.AsyncClient, runtime: Runtime, partner: Partner
) -> None:
    [message_id] = await seed(runtime, partner.company_id, [T0])
    found = await client.get(
        f"{BASE}/messages/status/{message_id}?channel=SMS",
        headers={**partner.headers, "X-Request-Id": "ok-1"},
    )
    history = await client.get(
        f"{BASE}/messages/history", headers={**partner.headers, "X-Request-Id": "ok-2"}
    )
    assert (found.status_code, found.headers["x-request-id"]) == (200, "ok-1")
    assert (history.status_code, history.headers["x-request-id"]) == (200, "ok-2")


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient, runtime: Runtime, partner: Partner
) -> None:
    [message_id] = await seed(runtime, partner.company_id, [T0])
    history_route = f"{BASE}/messages/history"
    before = (
        HTTP.count("GET", STATUS_ROUTE, 200),
        HTTP.count("GET", STATUS_ROUTE, 404),
        HTTP.count("GET", history_route, 200),
        HTTP.count("GET", "unmatched", 404),
    )
    await client.get(f"{BASE}/messages/status/{message_id}?channel=SMS", headers=partner.headers)
    await client.get(f"{BASE}/messages/status/msg_other?channel=SMS", headers=partner.headers)
    await client.get(history_route, headers=partner.headers)
    await client.get(f"{BASE}/nowhere/{message_id}", headers=partner.headers)
    after = (
        HTTP.count("GET", STATUS_ROUTE, 200),
        HTTP.count("GET", STATUS_ROUTE, 404),
        HTTP.count("GET", history_route, 200),
        HTTP.count("GET", "unmatched", 404),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1, 1]

    page = (await client.get("/metrics")).text
    families = {family.name: family for family in text_string_to_metric_families(page)}
    durations = families["partner_gateway_http_request_duration_seconds"]
    counts = [
        s for s in durations.samples if s.name.endswith("_count") and s.labels.get("route") == STATUS_ROUTE
    ]
    assert counts
    assert counts[0].value >= 2
    assert message_id not in page  # the template, never the path


async def test_metrics_are_served_to_loopback_and_private_networks_only(
    settings: Settings, runtime: Runtime
) -> None:
    for address, status in (
        ("127.0.0.1", 200),
        ("10.1.2.3", 200),
        ("192.168.7.1", 200),
        ("203.0.113.9", 403),
    ):
        async with client_for(settings, runtime, address) as client:
            answer = await client.get("/metrics")
        assert answer.status_code == status, address
    async with client_for(settings, runtime, "203.0.113.9") as client:
        refused = await client.get("/metrics")
    assert refused.headers["content-type"] == "application/problem+json"
    assert "PARTNER_GATEWAY_METRICS_ALLOWED_NETWORKS" in refused.json()["detail"]


async def test_with_a_token_metrics_need_it_from_anywhere(settings: Settings, runtime: Runtime) -> None:
    with_token = settings.model_copy(update={"metrics_token": SecretStr("scrape-secret")})
    runtime.settings = with_token
    for address in ("127.0.0.1", "203.0.113.9"):
        async with client_for(with_token, runtime, address) as client:
            missing = await client.get("/metrics")
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
            right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
        assert missing.headers["www-authenticate"].startswith("Bearer")


async def test_metrics_turned_off_are_not_served_nor_counted(
    settings: Settings, runtime: Runtime, partner: Partner
) -> None:
    off = settings.model_copy(update={"metrics_enabled": False})
    runtime.settings = off
    before = HTTP.count("GET", STATUS_ROUTE, 404)
    async with client_for(off, runtime) as client:
        await client.get(f"{BASE}/messages/status/msg_x?channel=SMS", headers=partner.headers)
        metrics = await client.get("/metrics")
    assert HTTP.count("GET", STATUS_ROUTE, 404) == before
    assert metrics.status_code == 404


async def test_the_access_log_has_a_line_per_partner_request_without_the_key(
    client: httpx.AsyncClient, partner: Partner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="partner_gateway.access"):
        await client.get(
            f"{BASE}/messages/status/msg_x?channel=SMS", headers={**partner.headers, "X-Request-Id": "acc-1"}
        )
        await client.post(
            f"{BASE}/sms/messages",
            json={"to": "+4915112345678", "text": "hi"},
            headers={**partner.headers, "X-Request-Id": "acc-2"},
        )
        await client.get("/health")  # not a partner request: no line
    lines = [record for record in caplog.records if record.name == "partner_gateway.access"]
    assert [(r.fields["method"], r.fields["route"], r.fields["status"]) for r in lines] == [  # type: ignore[attr-defined]
        ("GET", STATUS_ROUTE, 404),
        ("POST", f"{BASE}/sms/messages", 202),
    ]
    assert [r.context.request_id for r in lines] == ["acc-1", "acc-2"]  # type: ignore[attr-defined]
    assert [r.context.company_id for r in lines] == [partner.company_id] * 2  # type: ignore[attr-defined]
    assert lines[1].context.message_id.startswith("msg_")  # type: ignore[attr-defined]
    assert all(partner.api_key not in r.getMessage() for r in lines)


@pytest.fixture
async def quiet_client(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    runtime.settings = settings.model_copy(update={"access_log": False})
    async with client_for(runtime.settings, runtime) as client:
        yield client


async def test_the_access_log_can_be_turned_off(
    quiet_client: httpx.AsyncClient, partner: Partner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="partner_gateway.access"):
        await quiet_client.get(f"{BASE}/messages/status/msg_x?channel=SMS", headers=partner.headers)
    assert not [record for record in caplog.records if record.name == "partner_gateway.access"]
