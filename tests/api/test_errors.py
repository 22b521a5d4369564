"""Every error path answers problem details (SPEC §1), including the framework's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from partner_gateway.api.app import create_app
from partner_gateway.api.cursor import CursorCodec
from partner_gateway.config import Settings
from partner_gateway.runtime import Runtime
from partner_gateway.store.database import Database
from partner_gateway.store.status_reads import PostgresStatusReads, SqliteStatusReads
from support import BASE, Partner


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    return dict(body)


@pytest.mark.parametrize(
    "path", ["/", "/nope", f"{BASE}/nope", f"{BASE}/messages", "/partner-gateway/v2/messages/history"]
)
async def test_unknown_routes_are_404_problems(
    client: httpx.AsyncClient, partner: Partner, path: str
) -> None:
    assert_problem(await client.get(path, headers=partner.headers), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", f"{BASE}/sms/messages"),
        ("GET", f"{BASE}/sms/messages"),
        ("PUT", f"{BASE}/messages/status/query"),
        ("POST", f"{BASE}/messages/history"),
    ],
)
async def test_wrong_methods_are_405_problems(
    client: httpx.AsyncClient, partner: Partner, method: str, path: str
) -> None:
    response = await client.request(method, path, headers=partner.headers)
    assert_problem(response, 405)


async def test_unexpected_errors_are_500_without_internals(
    client: httpx.AsyncClient,
    partner: Partner,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*_args: object) -> None:
        raise RuntimeError("secret internals at /srv/partner_gateway/store.py line 42")

    monkeypatch.setattr(SqliteStatusReads, "one", broken)
    monkeypatch.setattr(PostgresStatusReads, "one", broken)
    response = await client.get(f"{BASE}/messages/status/msg_1?channel=SMS", headers=partner.headers)
    body = assert_problem(response, 500)
    assert response.headers["retry-after"]
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert ".py" not in response.text
    assert body["type"] == "https://partner-gateway.dev/problems/internal-error"
    assert "secret internals" in caplog.text  # logged for the operator, not shown to the partner


@pytest.fixture
async def unreachable_store_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    database = Database.from_settings(
        settings.model_copy(update={"database_url": "postgresql+asyncpg://nobody@127.0.0.1:9/none"})
    )
    runtime = Runtime(settings=settings, database=database, cursors=CursorCodec(b"k" * 32))
    transport = httpx.ASGITransport(app=create_app(settings, runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield http
    await database.dispose()


@pytest.mark.parametrize("path", ["/messages/history", "/messages/status/msg_1?channel=SMS"])
async def test_an_unreachable_store_is_503_with_retry_after(
    unreachable_store_client: httpx.AsyncClient, path: str
) -> None:
    response = await unreachable_store_client.get(
        f"{BASE}{path}", headers={"Authorization": "Bearer pgw_whatever"}
    )
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"


async def test_health_is_cheap_and_unauthenticated(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_openapi_document_is_3_1_and_lists_problems(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    expected = {
        f"{BASE}/sms/messages": "post",
        f"{BASE}/rcs/messages": "post",
        f"{BASE}/whatsapp/messages": "post",
        f"{BASE}/messages/status/{{customerMessageId}}": "get",
        f"{BASE}/messages/status": "get",
        f"{BASE}/messages/status/query": "post",
        f"{BASE}/messages/history": "get",
        f"{BASE}/messages/{{customerMessageId}}/events": "get",
    }
    for path, method in expected.items():
        operation = paths[path][method]
        responses = operation["responses"]
        assert {"400", "401", "500"} <= set(responses), path
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                content = response["content"]["application/problem+json"]
                assert content["examples"], (path, status)
    assert "414" in paths[f"{BASE}/messages/status"]["get"]["responses"]
    assert "404" in paths[f"{BASE}/messages/status/{{customerMessageId}}"]["get"]["responses"]
    schema = document["components"]["schemas"]["DeliveryStatusResponse"]
    assert {"customerMessageId", "deliveryStatus", "errorCode", "updatedAt"} <= set(schema["properties"])
    assert (await client.get(f"{BASE}/docs")).status_code == 200
