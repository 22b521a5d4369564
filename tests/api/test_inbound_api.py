"""`GET /messages/inbound` and the opt-out API over the app: tenancy, bad input as problem
documents, cursors bound to the company and the filters, the opt-out list's pages."""

from __future__ import annotations

import httpx

from partner_gateway.domain.inbound import DEFAULT_KEYWORDS, InboundMessage
from partner_gateway.domain.statuses import Channel
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import inbound
from support import BASE, Partner

T0 = 1_795_000_000_000


async def _inbound(runtime: Runtime, partner: Partner, other: Partner, count: int) -> None:
    async with runtime.database.write() as connection:
        await inbound.assign_number(connection, partner.company_id, Channel.SMS, "12345", T0)
        await inbound.assign_number(connection, other.company_id, Channel.SMS, "67890", T0)
        for i in range(count):
            for to in ("12345", "67890"):
                message = InboundMessage(
                    Channel.SMS, "smpp:a", "+4915112345678", to, f"{to} #{i}", "text", T0 + i, f"k{to}{i}"
                )
                await inbound.store_inbound(connection, message, DEFAULT_KEYWORDS, T0)


async def test_pages_are_the_companys_own_and_cursors_bound_to_it(
    client: httpx.AsyncClient, runtime: Runtime, partner: Partner, other_partner: Partner
) -> None:
    await _inbound(runtime, partner, other_partner, 5)
    first = await client.get(f"{BASE}/messages/inbound", params={"limit": "2"}, headers=partner.headers)
    assert first.status_code == 200
    page = first.json()
    assert [item["text"] for item in page["items"]] == ["12345 #4", "12345 #3"]
    assert first.headers["link"].endswith('rel="next"')
    assert "cursor=" in first.headers["link"]
    cursor = page["nextCursor"]
    theirs = await client.get(f"{BASE}/messages/inbound", params={"cursor": cursor, "limit": "2"},
                              headers=other_partner.headers)  # fmt: skip
    assert theirs.status_code == 400
    assert theirs.headers["content-type"] == "application/problem+json"
    other_filters = await client.get(f"{BASE}/messages/inbound", params={"cursor": cursor, "channel": "SMS"},
                                     headers=partner.headers)  # fmt: skip
    assert other_filters.status_code == 400
    rest = await client.get(f"{BASE}/messages/inbound", params={"cursor": cursor}, headers=partner.headers)
    assert [item["text"] for item in rest.json()["items"]] == ["12345 #2", "12345 #1", "12345 #0"]
    assert rest.json()["nextCursor"] is None
    other_view = await client.get(f"{BASE}/messages/inbound", headers=other_partner.headers)
    assert {item["to"] for item in other_view.json()["items"]} == {"67890"}


async def test_bad_filters_are_problems_naming_each_field(
    client: httpx.AsyncClient, partner: Partner
) -> None:
    answer = await client.get(
        f"{BASE}/messages/inbound",
        params={"startDate": "yesterday", "endDate": "2026-01-01", "channel": "sms", "limit": "5000",
                "from": "x" * 101, "to": " "},
        headers=partner.headers,
    )  # fmt: skip
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in answer.json()["errors"]} == {"startDate", "channel", "limit", "from", "to"}
    unknown = await client.get(f"{BASE}/messages/inbound", params={"text": "x"}, headers=partner.headers)
    assert unknown.status_code == 400
    assert (await client.get(f"{BASE}/messages/inbound")).status_code == 401


async def test_opt_out_entries_by_api_and_their_pages(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner
) -> None:
    numbers = [f"+491511234567{i}" for i in range(5)]
    for number in numbers:
        added = await client.put(f"{BASE}/opt-outs/SMS/{number}", headers=partner.headers)
        assert added.status_code == 201, added.text
    encoded = await client.put(f"{BASE}/opt-outs/WHATSAPP/%2B4915112345670", headers=partner.headers)
    assert encoded.status_code == 201
    assert encoded.json()["number"] == "+4915112345670"
    again = await client.put(f"{BASE}/opt-outs/SMS/{numbers[0]}", headers=partner.headers)
    assert again.status_code == 200
    assert again.json()["source"] == "api"
    seen, cursor = [], None
    while True:
        params = {"limit": "4"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"{BASE}/opt-outs", params=params, headers=partner.headers)).json()
        seen += [(item["channel"], item["number"]) for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [("SMS", n) for n in numbers] + [("WHATSAPP", "+4915112345670")]
    only = (
        await client.get(f"{BASE}/opt-outs", params={"channel": "WHATSAPP"}, headers=partner.headers)
    ).json()
    assert [item["number"] for item in only["items"]] == ["+4915112345670"]
    # Another company sees and deletes nothing of this list.
    assert (await client.get(f"{BASE}/opt-outs", headers=other_partner.headers)).json()["items"] == []
    assert (
        await client.get(f"{BASE}/opt-outs/SMS/{numbers[0]}", headers=other_partner.headers)
    ).status_code == 404
    assert (
        await client.delete(f"{BASE}/opt-outs/SMS/{numbers[0]}", headers=other_partner.headers)
    ).status_code == 404
    assert (
        await client.delete(f"{BASE}/opt-outs/SMS/{numbers[0]}", headers=partner.headers)
    ).status_code == 204
    bad = await client.get(
        f"{BASE}/opt-outs", params={"channel": "FAX", "limit": "0"}, headers=partner.headers
    )
    assert bad.status_code == 400
    assert {e["field"] for e in bad.json()["errors"]} == {"channel", "limit"}
    forged = await client.get(f"{BASE}/opt-outs", params={"cursor": "abc.def"}, headers=partner.headers)
    assert forged.status_code == 400
