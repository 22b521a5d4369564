"""The operators' endpoints: /health (liveness) and /ready (the store reachable), without a key."""

from __future__ import annotations

import httpx

from partner_gateway.api.app import create_app
from partner_gateway.api.cursor import CursorCodec
from partner_gateway.config import Settings
from partner_gateway.runtime import Runtime
from partner_gateway.store.database import Database
from support import free_port


async def test_health_and_ready_answer_without_a_key(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await client.get("/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": {"store": "ok"}})


async def test_ready_is_a_503_problem_naming_the_store_when_it_cannot_be_reached() -> None:
    """A real store that is not there: PostgreSQL's port with nothing listening."""
    settings = Settings(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/gone")
    runtime = Runtime(
        settings=settings, database=Database.from_settings(settings), cursors=CursorCodec(b"k" * 32)
    )
    try:
        transport = httpx.ASGITransport(app=create_app(settings, runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            ready = await client.get("/ready")
            health = await client.get("/health")
    finally:
        await runtime.close()
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.headers["retry-after"] == "5"
    problem = ready.json()
    assert (problem["title"], problem["status"]) == ("Not ready", 503)
    assert [error["field"] for error in problem["errors"]] == ["store"]
    assert "ConnectionRefusedError" in problem["errors"][0]["message"]
    assert health.status_code == 200  # alive all the same: take it out of rotation, do not restart it
