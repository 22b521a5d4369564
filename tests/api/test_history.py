"""History pages (SPEC §3.4): keyset paging, filters, cursors, the Link header."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from partner_gateway.runtime import Runtime
from support import BASE, Partner, seed

DAY = 86_400_000
T0 = 1_795_000_000_000  # 2026-11-19T...Z


async def page_through(client: httpx.AsyncClient, partner: Partner, **params: str) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = await client.get(f"{BASE}/messages/history", params=query, headers=partner.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(item["customerMessageId"] for item in body["items"])
        cursor = body["nextCursor"]
        if cursor is None:
            assert "link" not in response.headers
            return seen
        assert response.headers["link"].endswith('>; rel="next"')
    raise AssertionError("paging did not end")


async def test_pages_are_newest_first_with_ties_broken_by_id(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    stamps = [T0 + (i // 3) * 1000 for i in range(25)]  # groups of three share a millisecond
    ids = await seed(runtime, partner.company_id, stamps)
    expected = [i for _, i in sorted(zip(stamps, ids, strict=True), reverse=True)]
    assert await page_through(client, partner, limit="4") == expected
    assert await page_through(client, partner, limit="1000") == expected


async def test_default_page_size_is_100(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    await seed(runtime, partner.company_id, [T0 + i for i in range(101)])
    response = await client.get(f"{BASE}/messages/history", headers=partner.headers)
    assert len(response.json()["items"]) == 100
    assert response.json()["nextCursor"]


async def test_link_header_carries_the_filters_and_the_cursor(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    await seed(runtime, partner.company_id, [T0 + i for i in range(3)])
    response = await client.get(
        f"{BASE}/messages/history", params={"limit": "2", "channel": "SMS"}, headers=partner.headers
    )
    link = response.headers["link"]
    url = link[link.index("<") + 1 : link.index(">")]
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == f"{BASE}/messages/history"
    assert query == {"limit": ["2"], "channel": ["SMS"], "cursor": [response.json()["nextCursor"]]}
    following = await client.get(url, headers=partner.headers)
    assert len(following.json()["items"]) == 1


async def test_new_messages_during_paging_are_neither_skipped_nor_repeated(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    old = await seed(runtime, partner.company_id, [T0 + i * 10 for i in range(10)])
    first = await client.get(f"{BASE}/messages/history", params={"limit": "4"}, headers=partner.headers)
    await seed(runtime, partner.company_id, [T0 + 1_000_000 + i for i in range(5)])  # newer arrivals
    seen = [item["customerMessageId"] for item in first.json()["items"]]
    cursor = first.json()["nextCursor"]
    while cursor:
        page = await client.get(
            f"{BASE}/messages/history", params={"limit": "4", "cursor": cursor}, headers=partner.headers
        )
        seen += [item["customerMessageId"] for item in page.json()["items"]]
        cursor = page.json()["nextCursor"]
    assert seen == list(reversed(old))


async def test_date_filters_are_start_inclusive_end_exclusive(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    day = 1_795_046_400_000  # 2026-11-19T00:00:00Z
    ids = await seed(runtime, partner.company_id, [day - 1, day, day + DAY - 1, day + DAY])
    by_date = await page_through(client, partner, startDate="2026-11-19", endDate="2026-11-20")
    assert by_date == [ids[2], ids[1]]
    by_time = await page_through(
        client, partner, startDate="2026-11-19T00:00:00.000Z", endDate="2026-11-20T01:00:00+01:00"
    )
    assert by_time == [ids[2], ids[1]]


async def test_channel_status_and_destination_filters(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime
) -> None:
    sms = await seed(runtime, partner.company_id, [T0 + i for i in range(3)])
    rcs = await seed(runtime, partner.company_id, [T0 + 10 + i for i in range(2)], channel="RCS")
    delivered = await seed(runtime, partner.company_id, [T0 + 20 + i for i in range(2)], status="DELIVERED")
    failed = await seed(runtime, partner.company_id, [T0 + 30], channel="WHATSAPP", status="ERROR")
    elsewhere = await seed(runtime, partner.company_id, [T0 + 40], to="+4915199999999")

    assert set(await page_through(client, partner, channel="RCS")) == set(rcs)
    assert await page_through(client, partner, deliveryStatus="DELIVERED") == list(reversed(delivered))
    both = await page_through(client, partner, deliveryStatus="ERROR, DELIVERED", limit="1")
    assert both == [failed[0], *reversed(delivered)]
    assert await page_through(client, partner, deliveryStatus="ERROR", channel="SMS") == []
    assert await page_through(client, partner, to="+4915199999999") == elsewhere
    unknown_sms = await page_through(client, partner, deliveryStatus="UNKNOWN", channel="SMS")
    assert set(unknown_sms) == set(sms + elsewhere)
    assert await page_through(client, partner, to="+4915199999999", deliveryStatus="DELIVERED") == []


async def test_history_never_shows_another_company(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner, runtime: Runtime
) -> None:
    await seed(runtime, other_partner.company_id, [T0])
    mine = await seed(runtime, partner.company_id, [T0 + 1])
    assert await page_through(client, partner) == mine


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"startDate": "yesterday"}, "startDate"),
        ({"endDate": "2026-13-01"}, "endDate"),
        ({"startDate": "2026-11-19T10:00:00"}, "startDate"),
        ({"startDate": "2026-11-20", "endDate": "2026-11-19"}, "startDate"),
        ({"channel": "FAX"}, "channel"),
        ({"deliveryStatus": "LOST"}, "deliveryStatus"),
        ({"deliveryStatus": ","}, "deliveryStatus"),
        ({"to": "0151"}, "to"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "a.b"}, "cursor"),
        ({"cursor": "x" * 5000}, "cursor"),
    ],
)
async def test_bad_parameters_are_400(
    client: httpx.AsyncClient, partner: Partner, params: dict[str, str], field: str
) -> None:
    response = await client.get(f"{BASE}/messages/history", params=params, headers=partner.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_cursor_from_another_company_or_other_filters_is_400(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner, runtime: Runtime
) -> None:
    await seed(runtime, partner.company_id, [T0 + i for i in range(3)])
    await seed(runtime, other_partner.company_id, [T0 + i for i in range(3)])
    cursor = (
        await client.get(f"{BASE}/messages/history", params={"limit": "1"}, headers=partner.headers)
    ).json()["nextCursor"]
    stolen = await client.get(
        f"{BASE}/messages/history", params={"cursor": cursor}, headers=other_partner.headers
    )
    assert stolen.status_code == 400
    refiltered = await client.get(
        f"{BASE}/messages/history", params={"cursor": cursor, "channel": "RCS"}, headers=partner.headers
    )
    assert refiltered.status_code == 400
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    assert (
        await client.get(f"{BASE}/messages/history", params={"cursor": tampered}, headers=partner.headers)
    ).status_code == 400
    # The page size may change between pages.
    assert (
        await client.get(
            f"{BASE}/messages/history", params={"cursor": cursor, "limit": "5"}, headers=partner.headers
        )
    ).status_code == 200
