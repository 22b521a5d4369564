"""GET /messages/stats: buckets by hour and day, rates, error codes, latency, filters, tenancy and
strict parameters."""

from __future__ import annotations

import httpx
import pytest

from partner_gateway.domain.reports import GATEWAY, StatusReport
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.runtime import Runtime
from partner_gateway.store.message_stats import bin_upper_ms, latency_bin
from partner_gateway.store.repositories import delivery
from support import BASE, Partner, seed

HOUR = 3_600_000
DAY0 = 1_795_132_800_000  # 2026-11-20T00:00:00Z
URL = f"{BASE}/messages/stats"


async def settle(runtime: Runtime, changes: list[tuple[str, DeliveryStatus, str | None]], now: int) -> None:
    reports = [
        StatusReport(
            GATEWAY, status, status.value, "t", now, f"t:{i}", message_id=m, error_code=code, is_final=True
        )
        for i, (m, status, code) in enumerate(changes)
    ]
    async with runtime.database.write() as connection:
        await delivery.apply_gateway_reports(connection, reports, now)


async def stats(client: httpx.AsyncClient, partner: Partner, **params: str) -> dict:  # type: ignore[type-arg]
    response = await client.get(URL, params=params, headers=partner.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def traffic(runtime: Runtime, partner: Partner) -> None:
    """2026-11-20: 4 SMS at 10:00 (2 delivered 2 s later, 1 failed an hour later, 1 waiting) and
    1 WhatsApp at 11:00 (failed 30 s later); 2026-11-21: 1 SMS, waiting."""
    sms = await seed(runtime, partner.company_id, [DAY0 + 10 * HOUR + i for i in range(4)])
    [wa] = await seed(runtime, partner.company_id, [DAY0 + 11 * HOUR], channel="WHATSAPP")
    await seed(runtime, partner.company_id, [DAY0 + 24 * HOUR + 5])
    await settle(
        runtime,
        [(sms[0], DeliveryStatus.DELIVERED, None), (sms[1], DeliveryStatus.DELIVERED, None)],
        DAY0 + 10 * HOUR + 2_000,
    )
    await settle(
        runtime,
        [(sms[2], DeliveryStatus.ERROR, "smpp:0x0b"), (wa, DeliveryStatus.ERROR, "wa:131026")],
        DAY0 + 11 * HOUR + 30_000,
    )


async def test_a_day_by_hour(client: httpx.AsyncClient, partner: Partner, traffic: None) -> None:
    body = await stats(client, partner, startDate="2026-11-20", endDate="2026-11-21", bucket="hour")
    assert body["bucket"] == "hour"
    assert len(body["buckets"]) == 24
    assert body["buckets"][10]["start"] == "2026-11-20T10:00:00.000Z"
    [sms] = body["buckets"][10]["channels"]
    assert sms["channel"] == "SMS"
    assert sms["total"] == 4
    assert sms["counts"] == {"DELIVERED": 2, "ERROR": 1, "UNKNOWN": 1}
    assert sms["deliveryRate"] == pytest.approx(2 / 3)
    assert sms["errorCodes"] == [{"errorCode": "smpp:0x0b", "count": 1}]
    assert sms["latencyMs"]["p50"] == bin_upper_ms(latency_bin(2_000))
    assert sms["latencyMs"]["p95"] == bin_upper_ms(latency_bin(HOUR + 30_000 - 2))
    [wa] = body["buckets"][11]["channels"]
    assert (wa["channel"], wa["counts"], wa["deliveryRate"]) == ("WHATSAPP", {"ERROR": 1}, 0.0)
    assert all(not bucket["channels"] for i, bucket in enumerate(body["buckets"]) if i not in (10, 11))


async def test_a_month_by_day_sums_the_hours(
    client: httpx.AsyncClient, partner: Partner, traffic: None
) -> None:
    body = await stats(client, partner, startDate="2026-11-01", endDate="2026-12-02")
    assert body["bucket"] == "day"
    assert len(body["buckets"]) == 31
    day = {bucket["start"][:10]: bucket["channels"] for bucket in body["buckets"]}
    assert [c["total"] for c in day["2026-11-20"]] == [4, 1]
    assert [(c["channel"], c["counts"], c["deliveryRate"]) for c in day["2026-11-21"]] == [
        ("SMS", {"UNKNOWN": 1}, None)
    ]
    assert day["2026-11-21"][0]["latencyMs"] == {"p50": None, "p95": None}


async def test_the_channel_filter(client: httpx.AsyncClient, partner: Partner, traffic: None) -> None:
    body = await stats(client, partner, startDate="2026-11-20", endDate="2026-11-21", channel="WHATSAPP")
    [[wa]] = [bucket["channels"] for bucket in body["buckets"]]
    assert wa["channel"] == "WHATSAPP"
    assert wa["total"] == 1


async def test_another_companys_messages_are_never_counted(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner, traffic: None
) -> None:
    body = await stats(client, other_partner, startDate="2026-11-20", endDate="2026-11-22")
    assert [bucket["channels"] for bucket in body["buckets"]] == [[], []]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"endDate": "2026-11-21"}, "startDate"),
        ({"startDate": "2026-11-20"}, "endDate"),
        ({"startDate": "yesterday", "endDate": "2026-11-21"}, "startDate"),
        ({"startDate": "2026-11-20", "endDate": "2026-11-21", "bucket": "week"}, "bucket"),
        ({"startDate": "2026-11-20", "endDate": "2026-11-21", "channel": "FAX"}, "channel"),
        ({"startDate": "2026-11-20T10:30:00Z", "endDate": "2026-11-21", "bucket": "hour"}, "startDate"),
        ({"startDate": "2026-11-20T10:00:00Z", "endDate": "2026-11-21"}, "startDate"),
        ({"startDate": "2026-11-21", "endDate": "2026-11-20"}, "startDate"),
        ({"startDate": "2026-11-20", "endDate": "2026-11-20"}, "startDate"),
        ({"startDate": "2026-11-01", "endDate": "2026-12-03"}, "endDate"),
        ({"startDate": "2026-11-01", "endDate": "2026-11-09", "bucket": "hour"}, "endDate"),
        ({"startDate": "2026-11-20", "endDate": "2026-11-21", "limit": "5"}, "limit"),
    ],
)
async def test_bad_parameters_are_problems_naming_them(
    client: httpx.AsyncClient, partner: Partner, params: dict[str, str], field: str
) -> None:
    response = await client.get(URL, params=params, headers=partner.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [error["field"] for error in response.json()["errors"]], response.json()


async def test_the_longest_windows_are_accepted(client: httpx.AsyncClient, partner: Partner) -> None:
    assert len((await stats(client, partner, startDate="2026-11-01", endDate="2026-12-02"))["buckets"]) == 31
    week = await stats(client, partner, startDate="2026-11-01", endDate="2026-11-08", bucket="hour")
    assert len(week["buckets"]) == 168


async def test_stats_need_an_api_key(client: httpx.AsyncClient) -> None:
    response = await client.get(URL, params={"startDate": "2026-11-20", "endDate": "2026-11-21"})
    assert response.status_code == 401


async def test_the_openapi_document_states_the_rules(client: httpx.AsyncClient) -> None:
    document = (await client.get(f"{BASE}/openapi.json")).json()
    operation = document["paths"][URL]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert parameters["startDate"]["required"] is True
    assert parameters["endDate"]["required"] is True
    assert parameters["bucket"]["schema"] == {"type": "string", "enum": ["hour", "day"], "default": "day"}
    assert set(operation["responses"]) >= {"200", "400", "401", "429"}
    counts = document["components"]["schemas"]["ChannelStats"]["properties"]["counts"]
    assert counts["propertyNames"] == {"$ref": "#/components/schemas/DeliveryStatus"}
