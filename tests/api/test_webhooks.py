"""Provider webhooks are mounted from what providers declare, outside partner authentication."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping

import httpx
import pytest

from partner_gateway.api.app import create_app
from partner_gateway.channels.base import WebhookRoute
from partner_gateway.config import Settings
from partner_gateway.runtime import Runtime

received: list[tuple[bytes, dict[str, str], dict[str, str]]] = []


async def echo(body: bytes, headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[int, bytes, str]:
    received.append((body, dict(headers), dict(query)))
    if headers.get("x-signature") != "good":
        return 401, b'{"error": "bad signature"}', "application/json"
    return 200, json.dumps({"length": len(body), "q": dict(query)}).encode(), "application/json"


@pytest.fixture
async def webhook_client(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    routes = [WebhookRoute("POST", "echo", echo), WebhookRoute("GET", "echo", echo)]
    transport = httpx.ASGITransport(app=create_app(settings, runtime, webhooks=routes))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


async def test_the_provider_sees_raw_bytes_headers_and_query(webhook_client: httpx.AsyncClient) -> None:
    raw = '{"text": "Привет 👋"}'.encode()
    response = await webhook_client.post("/webhooks/echo?a=1", content=raw, headers={"X-Signature": "good"})
    assert response.status_code == 200
    assert response.json() == {"length": len(raw), "q": {"a": "1"}}
    body, headers, _ = received[-1]
    assert body == raw
    assert headers["x-signature"] == "good"


async def test_the_provider_decides_on_authentication(webhook_client: httpx.AsyncClient) -> None:
    assert (await webhook_client.post("/webhooks/echo", content=b"{}")).status_code == 401
    assert (await webhook_client.get("/webhooks/echo", params={"hub.mode": "x"})).status_code == 401


async def test_large_provider_batches_are_accepted(webhook_client: httpx.AsyncClient) -> None:
    big = b"x" * (3 * 1024 * 1024)
    response = await webhook_client.post("/webhooks/echo", content=big, headers={"X-Signature": "good"})
    assert response.status_code == 200


async def test_unknown_providers_are_404_problems(webhook_client: httpx.AsyncClient) -> None:
    response = await webhook_client.post("/webhooks/nobody", content=b"{}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
