"""Rate limits per company on the partner routes (SPEC §2): the front's and Litestar's alike.

The limiter's clock is the test's (`Clock`), so a refill is a step of the clock, not a sleep.
Small limits: sends 2 a second with bursts of 3, reads 5 a second with bursts of 4.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from partner_gateway.api.app import create_app
from partner_gateway.api.rate_limits.limiter import RateLimiter
from partner_gateway.api.rate_limits.sync import RateLimitSync
from partner_gateway.config import Settings
from partner_gateway.domain.rate_limits import Limit, Traffic
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import rate_limits as store
from partner_gateway.store.repositories.rate_limits import CompanyLimits
from partner_gateway.store.tables import idempotency_keys, messages
from support import BASE, Partner

SENDS_BURST, READS_BURST = 3, 4
SMS = {"to": "+4915112345678", "text": "Hello"}
UNKNOWN_ID = "msg_01JDX3Q7T0Z5K9R3B2M8N4P6W1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path: Path, postgres_url: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=postgres_url,
        rate_limit_sends_per_second=2,
        rate_limit_sends_burst=SENDS_BURST,
        rate_limit_reads_per_second=5,
        rate_limit_reads_burst=READS_BURST,
    )


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    clock = Clock()
    runtime.rate_limits.clock = clock
    return clock


@pytest.fixture
async def framework(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """Litestar behind the front, on the same runtime (so the same buckets)."""
    app = create_app(settings, runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app.framework), base_url="http://gateway.test"
    ) as http:
        yield http


Request = Callable[[httpx.AsyncClient, Partner], Awaitable[httpx.Response]]


def read_one(client: httpx.AsyncClient, partner: Partner) -> Awaitable[httpx.Response]:
    return client.get(f"{BASE}/messages/status/{UNKNOWN_ID}?channel=SMS", headers=partner.headers)


def send_sms(client: httpx.AsyncClient, partner: Partner) -> Awaitable[httpx.Response]:
    return client.post(f"{BASE}/sms/messages", json=SMS, headers=partner.headers)


async def until_refused(request: Request, client: httpx.AsyncClient, partner: Partner, most: int = 50) -> int:
    """How many requests are admitted before the first 429."""
    for admitted in range(most):
        if (await request(client, partner)).status_code == 429:
            return admitted
    raise AssertionError(f"no 429 in {most} requests")


async def test_a_burst_then_429_problem_with_retry_after_and_the_draft_headers(
    client: httpx.AsyncClient, partner: Partner, clock: Clock
) -> None:
    for left in range(READS_BURST - 1, -1, -1):
        answer = await read_one(client, partner)
        assert answer.status_code == 404  # counted: the key was good
        assert answer.headers["ratelimit-policy"] == '"reads";q=4;w=1'
        assert answer.headers["ratelimit"] == f'"reads";r={left};t=1'
    refused = await read_one(client, partner)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["ratelimit-policy"] == '"reads";q=4;w=1'
    assert refused.headers["ratelimit"] == '"reads";r=0;t=1'
    problem = refused.json()
    assert set(problem) == {"type", "title", "status", "detail", "requestId"}
    assert problem["type"] == "https://partner-gateway.dev/problems/rate-limited"
    assert problem["title"] == "Too Many Requests"
    assert problem["status"] == 429
    assert "limited to 5 per second, bursts of 4" in problem["detail"]


async def test_a_refusal_is_counted_in_the_metrics_by_operation_and_company_class(
    client: httpx.AsyncClient, partner: Partner, clock: Clock, runtime: Runtime
) -> None:
    def refused(operation: str, company_class: str) -> float:
        labels = {"operation": operation, "company_class": company_class}
        return REGISTRY.get_sample_value("partner_gateway_rate_limited_requests_total", labels) or 0.0

    before = refused("reads", "default"), refused("reads", "own")
    await until_refused(read_one, client, partner)
    assert (await read_one(client, partner)).status_code == 429
    assert refused("reads", "default") == before[0] + 2
    async with runtime.database.write() as connection:
        await store.set_overrides(
            connection, partner.company_id, CompanyLimits(reads=Limit.of(1, 1)), now_ms()
        )
    await RateLimitSync(runtime.rate_limits, runtime.database, shared=False, refresh_seconds=0).round()
    assert (await read_one(client, partner)).status_code == 429
    assert refused("reads", "own") == before[1] + 1
    assert refused("reads", "default") == before[0] + 2


async def test_refill_admits_the_rate(client: httpx.AsyncClient, partner: Partner, clock: Clock) -> None:
    assert await until_refused(read_one, client, partner) == READS_BURST
    clock.now += 0.2  # 5 a second: one more
    assert await until_refused(read_one, client, partner) == 1
    clock.now += 0.59
    assert await until_refused(read_one, client, partner) == 2
    clock.now += 3600
    assert await until_refused(read_one, client, partner) == READS_BURST  # the burst, no more


async def test_retry_after_is_whole_seconds_until_the_next_request(
    client: httpx.AsyncClient, partner: Partner, clock: Clock, runtime: Runtime
) -> None:
    runtime.rate_limits.set_overrides({partner.company_id: CompanyLimits(reads=Limit.of(0.25, 1))})
    assert await until_refused(read_one, client, partner) == 1
    refused = await read_one(client, partner)
    assert refused.headers["retry-after"] == "4"  # one request every 4 s
    assert refused.headers["ratelimit"] == '"reads";r=0;t=4'
    clock.now += 3.9
    assert (await read_one(client, partner)).status_code == 429
    clock.now += 0.1
    assert (await read_one(client, partner)).status_code == 404


async def test_one_company_never_consumes_another_s_limit(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner, clock: Clock
) -> None:
    assert await until_refused(read_one, client, partner) == READS_BURST
    assert await until_refused(send_sms, client, partner) == SENDS_BURST
    assert await until_refused(read_one, client, other_partner) == READS_BURST
    assert await until_refused(send_sms, client, other_partner) == SENDS_BURST


async def test_sends_and_reads_are_limited_apart(
    client: httpx.AsyncClient, partner: Partner, clock: Clock
) -> None:
    assert await until_refused(send_sms, client, partner) == SENDS_BURST
    answer = await read_one(client, partner)
    assert answer.status_code == 404
    assert answer.headers["ratelimit"] == '"reads";r=3;t=1'
    assert await until_refused(read_one, client, partner) == READS_BURST - 1
    clock.now += 0.5  # one send's worth
    sent = await send_sms(client, partner)
    assert sent.status_code == 202
    assert sent.headers["ratelimit-policy"] == '"sends";q=3;w=2'
    assert sent.headers["ratelimit"] == '"sends";r=0;t=2'


async def test_a_refused_send_stores_and_sends_nothing(
    client: httpx.AsyncClient, partner: Partner, clock: Clock, runtime: Runtime
) -> None:
    assert await until_refused(send_sms, client, partner) == SENDS_BURST
    refused = await client.post(
        f"{BASE}/sms/messages", json=SMS, headers={**partner.headers, "Idempotency-Key": "k-1"}
    )
    assert refused.status_code == 429
    async with runtime.database.read() as connection:
        stored = (await connection.execute(select(func.count()).select_from(messages))).scalar_one()
        keys = (await connection.execute(select(func.count()).select_from(idempotency_keys))).scalar_one()
    assert (stored, keys) == (SENDS_BURST, 0)
    clock.now += 0.5
    retried = await client.post(
        f"{BASE}/sms/messages", json=SMS, headers={**partner.headers, "Idempotency-Key": "k-1"}
    )
    assert retried.status_code == 202
    assert "idempotent-replayed" not in {name.lower() for name in retried.headers}


async def test_the_front_and_the_framework_count_against_one_bucket(
    client: httpx.AsyncClient, framework: httpx.AsyncClient, partner: Partner, clock: Clock
) -> None:
    answers = [await read_one(c, partner) for c in (client, framework, client, framework, client, framework)]
    assert [a.status_code for a in answers] == [404, 404, 404, 404, 429, 429]
    for front_answer, framework_answer in ((answers[0], answers[1]), (answers[4], answers[5])):
        for name in ("ratelimit-policy", "retry-after", "content-type"):
            assert front_answer.headers.get(name) == framework_answer.headers.get(name), name
        # The request id is the front's (which the bare framework here is not behind).
        assert {**front_answer.json(), "requestId": None} == {**framework_answer.json(), "requestId": None}
    assert [a.headers["ratelimit"] for a in answers[:4]] == [f'"reads";r={n};t=1' for n in (3, 2, 1, 0)]
    sent = [await send_sms(c, partner) for c in (framework, client, framework, client)]
    assert [a.status_code for a in sent] == [202, 202, 202, 429]


READ_ROUTES: list[tuple[str, str, dict[str, object] | None]] = [
    ("GET", f"/messages/status/{UNKNOWN_ID}?channel=SMS", None),  # the front
    ("GET", f"/messages/status/{UNKNOWN_ID}/?channel=SMS", None),  # Litestar (trailing slash)
    ("GET", f"/messages/status?ids={UNKNOWN_ID}&channel=SMS", None),  # the front
    ("GET", f"/messages/status?channel=SMS&ids={UNKNOWN_ID}%2Cx", None),  # Litestar (percent-encoded)
    ("POST", "/messages/status/query", {"channel": "SMS", "ids": [UNKNOWN_ID]}),
    ("GET", "/messages/history", None),
    ("GET", "/messages/history?limit=0", None),  # a 400 is counted too
    ("GET", f"/messages/{UNKNOWN_ID}/events?channel=SMS", None),
    ("GET", "/callbacks/settings", None),
    ("PUT", "/callbacks/settings", {"url": None}),
]
SEND_ROUTES: list[tuple[str, str, dict[str, object] | None]] = [
    ("POST", "/sms/messages", SMS),  # the front
    ("POST", "/sms/messages", {**SMS, "text": ""}),  # a 400 from Litestar
    ("POST", "/whatsapp/messages", {"to": "+4915112345678", "text": "Hi"}),
    ("POST", "/rcs/messages", {"to": "+4915112345678", "text": "Hi"}),
]


@pytest.mark.parametrize(
    ("traffic", "method", "path", "body"),
    [("reads", *route) for route in READ_ROUTES] + [("sends", *route) for route in SEND_ROUTES],
)
async def test_every_partner_route_is_counted(
    client: httpx.AsyncClient,
    partner: Partner,
    clock: Clock,
    traffic: str,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    burst = READS_BURST if traffic == "reads" else SENDS_BURST
    for _ in range(burst):
        answer = await client.request(method, BASE + path, json=body, headers=partner.headers)
        assert answer.status_code < 429, answer.text
        assert re.fullmatch(rf'"{traffic}";r=\d+;t=\d+', answer.headers["ratelimit"])
        assert answer.headers["ratelimit-policy"].startswith(f'"{traffic}";')
    refused = await client.request(method, BASE + path, json=body, headers=partner.headers)
    assert refused.status_code == 429
    assert refused.json()["type"].endswith("/rate-limited")
    assert int(refused.headers["retry-after"]) >= 1


async def test_requests_without_a_valid_key_are_not_counted(
    client: httpx.AsyncClient, partner: Partner, clock: Clock
) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}) * 5:
        answer = await client.get(f"{BASE}/messages/status/{UNKNOWN_ID}?channel=SMS", headers=headers)
        assert answer.status_code == 401
        assert "ratelimit" not in answer.headers
    assert await until_refused(read_one, client, partner) == READS_BURST


async def test_operations_and_webhooks_are_not_partner_traffic(
    client: httpx.AsyncClient, partner: Partner, clock: Clock
) -> None:
    for _ in range(2 * READS_BURST):
        for path in ("/health", "/ready", f"{BASE}/openapi.json"):
            answer = await client.get(path, headers=partner.headers)
            assert answer.status_code == 200, path
            assert "ratelimit" not in answer.headers
    assert await until_refused(read_one, client, partner) == READS_BURST


async def test_limits_can_be_turned_off(
    client: httpx.AsyncClient, partner: Partner, settings: Settings, runtime: Runtime
) -> None:
    runtime.rate_limits = RateLimiter.from_settings(settings.model_copy(update={"rate_limit_enabled": False}))
    for _ in range(3 * READS_BURST):
        answer = await read_one(client, partner)
        assert answer.status_code == 404
        assert "ratelimit" not in answer.headers
    assert (await send_sms(client, partner)).status_code == 202


async def test_a_company_s_own_limits_apply_at_run_time(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner, clock: Clock, runtime: Runtime
) -> None:
    sync = RateLimitSync(runtime.rate_limits, runtime.database, shared=False, refresh_seconds=0)
    await sync.round()
    assert await until_refused(read_one, client, partner) == READS_BURST
    async with runtime.database.write() as connection:
        await store.set_overrides(
            connection, partner.company_id, CompanyLimits(reads=Limit.of(50, 10)), now_ms()
        )
    await sync.round()  # what the running process does every PARTNER_GATEWAY_RATE_LIMIT_REFRESH_SECONDS
    clock.now += 0.1  # the new rate refills the bucket: 5 in 0.1 s
    assert await until_refused(read_one, client, partner) == 5
    clock.now += 10  # up to the new burst
    assert await until_refused(read_one, client, partner) == 10
    answer = await send_sms(client, partner)
    assert answer.headers["ratelimit-policy"] == '"sends";q=3;w=2'  # sends keep the default
    assert await until_refused(read_one, client, other_partner) == READS_BURST  # others too
    async with runtime.database.write() as connection:
        await store.set_overrides(connection, partner.company_id, CompanyLimits(), now_ms())
    clock.now += 10
    await sync.round()
    assert await until_refused(read_one, client, partner) == READS_BURST


async def test_a_running_sync_picks_a_change_up_without_being_asked(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    sync = RateLimitSync(runtime.rate_limits, runtime.database, shared=False, refresh_seconds=0.05)
    await sync.start()
    try:
        async with runtime.database.write() as connection:
            await store.set_overrides(
                connection, partner.company_id, CompanyLimits(reads=Limit.of(0.01, 1)), now_ms()
            )
        for _ in range(200):  # bounded: 10 s at most, normally one refresh period
            limit = runtime.rate_limits.limit_of(partner.company_id, Traffic.READS)
            if limit.per_second == 0.01:
                break
            await asyncio.sleep(0.05)
        assert runtime.rate_limits.limit_of(partner.company_id, Traffic.READS) == Limit.of(0.01, 1)
        answer = await read_one(client, partner)
        assert answer.headers["ratelimit-policy"] == '"reads";q=1;w=100'
        assert (await read_one(client, partner)).status_code == 429
    finally:
        await sync.stop()


async def test_the_openapi_document_declares_429_and_the_headers(client: httpx.AsyncClient) -> None:
    document = (await client.get(f"{BASE}/openapi.json")).json()
    assert set(document["components"]["headers"]) >= {"RateLimit-Policy", "RateLimit", "Retry-After"}
    operations = [
        (path, operation)
        for path, item in document["paths"].items()
        if path.startswith(BASE + "/")
        for operation in item.values()
        if isinstance(operation, dict) and operation.get("security")
    ]
    assert len(operations) >= 10
    for path, operation in operations:
        responses = operation["responses"]
        limited = responses["429"]
        assert set(limited["headers"]) == {"Retry-After", "RateLimit-Policy", "RateLimit"}, path
        assert limited["content"]["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
        success = next(body for status, body in responses.items() if status.startswith("2"))
        assert set(success["headers"]) >= {"RateLimit-Policy", "RateLimit"}, path
