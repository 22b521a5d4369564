"""Status look-ups through the HTTP layer (SPEC §3.2, §3.3) and the timeline (SPEC §4)."""

from __future__ import annotations

import httpx
import pytest

from support import BASE, Partner


async def send(client: httpx.AsyncClient, partner: Partner, channel: str = "sms", **extra: object) -> str:
    body: dict[str, object] = {"to": "+4915112345678", "text": "Hello", **extra}
    response = await client.post(f"{BASE}/{channel}/messages", json=body, headers=partner.headers)
    assert response.status_code == 202, response.text
    return str(response.json()["customerMessageId"])


async def test_single_status_has_the_nine_fields(client: httpx.AsyncClient, partner: Partner) -> None:
    message_id = await send(client, partner, reference="r-1")
    response = await client.get(f"{BASE}/messages/status/{message_id}?channel=SMS", headers=partner.headers)
    assert response.status_code == 200
    body = response.json()
    for field in (
        "customerMessageId", "channel", "to", "reference", "deliveryStatus",
        "deliveryStatusDescription", "errorCode", "createdAt", "updatedAt",
    ):  # fmt: skip
        assert field in body
    assert body["customerMessageId"] == message_id
    assert body["reference"] == "r-1"


async def test_null_fields_are_present_not_omitted(client: httpx.AsyncClient, partner: Partner) -> None:
    message_id = await send(client, partner, "whatsapp")
    body = (
        await client.get(f"{BASE}/messages/status/{message_id}?channel=WHATSAPP", headers=partner.headers)
    ).json()
    assert body["reference"] is None
    assert body["errorCode"] is None


@pytest.mark.parametrize("query", ["", "?channel=", "?channel=sms", "?channel=EMAIL", "?channel=SMS,RCS"])
async def test_single_status_needs_a_valid_channel(
    client: httpx.AsyncClient, partner: Partner, query: str
) -> None:
    message_id = await send(client, partner)
    response = await client.get(f"{BASE}/messages/status/{message_id}{query}", headers=partner.headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    error = response.json()["errors"][0]
    assert error["field"] == "channel"
    assert "SMS, RCS, WHATSAPP" in error["message"]


async def test_wrong_channel_unknown_id_and_other_company_are_the_same_404(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner
) -> None:
    message_id = await send(client, partner)
    wrong_channel = await client.get(
        f"{BASE}/messages/status/{message_id}?channel=RCS", headers=partner.headers
    )
    unknown = await client.get(f"{BASE}/messages/status/msg_NOPE?channel=SMS", headers=partner.headers)
    foreign = await client.get(
        f"{BASE}/messages/status/{message_id}?channel=SMS", headers=other_partner.headers
    )
    too_long = await client.get(f"{BASE}/messages/status/{'x' * 500}?channel=SMS", headers=partner.headers)
    for response in (wrong_channel, unknown, foreign, too_long):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/not-found")
    # Another company's message reads exactly like a missing one, apart from the id echoed.
    missing_id = message_id[:-1] + ("Y" if message_id.endswith("Z") else "Z")
    missing = await client.get(f"{BASE}/messages/status/{missing_id}?channel=SMS", headers=partner.headers)
    assert foreign.json()["detail"].replace(message_id, "") == missing.json()["detail"].replace(
        missing_id, ""
    )


async def test_batch_omits_unknown_foreign_and_other_channel_ids(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner
) -> None:
    mine = [await send(client, partner) for _ in range(3)]
    rcs = await send(client, partner, "rcs")
    theirs = await send(client, other_partner)
    ids = ",".join([*mine, rcs, theirs, "msg_UNKNOWN"])
    response = await client.get(
        f"{BASE}/messages/status", params={"ids": ids, "channel": "SMS"}, headers=partner.headers
    )
    assert response.status_code == 200
    assert sorted(item["customerMessageId"] for item in response.json()) == sorted(mine)


async def test_batch_with_no_match_is_an_empty_list(client: httpx.AsyncClient, partner: Partner) -> None:
    response = await client.get(
        f"{BASE}/messages/status", params={"ids": "a,b,c", "channel": "SMS"}, headers=partner.headers
    )
    assert response.status_code == 200
    assert response.json() == []


async def test_batch_trims_spaces_ignores_empty_items_and_repeats(
    client: httpx.AsyncClient, partner: Partner
) -> None:
    first, second = await send(client, partner), await send(client, partner)
    ids = f" {first} ,,{second},{first}, ,{second} "
    response = await client.get(
        f"{BASE}/messages/status", params={"ids": ids, "channel": "SMS"}, headers=partner.headers
    )
    assert sorted(item["customerMessageId"] for item in response.json()) == sorted([first, second])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"channel": "SMS"}, "ids"),
        ({"ids": "", "channel": "SMS"}, "ids"),
        ({"ids": " , ,", "channel": "SMS"}, "ids"),
        ({"ids": "a"}, "channel"),
        ({"ids": "a", "channel": "FAX"}, "channel"),
    ],
)
async def test_batch_bad_parameters_are_400(
    client: httpx.AsyncClient, partner: Partner, params: dict[str, str], field: str
) -> None:
    response = await client.get(f"{BASE}/messages/status", params=params, headers=partner.headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


async def test_batch_of_a_thousand_ids(client: httpx.AsyncClient, partner: Partner) -> None:
    sent = [await send(client, partner) for _ in range(20)]
    padding = [f"msg_{i:026d}" for i in range(1000)]
    response = await client.get(
        f"{BASE}/messages/status",
        params={"ids": ",".join(padding + sent), "channel": "SMS"},
        headers=partner.headers,
    )
    assert response.status_code == 200
    assert sorted(item["customerMessageId"] for item in response.json()) == sorted(sent)


async def test_post_query_answers_like_the_batch(client: httpx.AsyncClient, partner: Partner) -> None:
    sent = [await send(client, partner) for _ in range(5)]
    ids = [f"msg_{i:026d}" for i in range(9_990)] + sent + [sent[0]]
    response = await client.post(
        f"{BASE}/messages/status/query", json={"channel": "SMS", "ids": ids}, headers=partner.headers
    )
    assert response.status_code == 200, response.text
    assert sorted(item["customerMessageId"] for item in response.json()) == sorted(sent)


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "SMS", "ids": []},
        {"channel": "SMS", "ids": ["x"] * 10_001},
        {"channel": "FAX", "ids": ["x"]},
        {"ids": ["x"]},
        {"channel": "SMS", "ids": "x,y"},
    ],
)
async def test_post_query_bad_bodies_are_400(
    client: httpx.AsyncClient, partner: Partner, body: dict[str, object]
) -> None:
    response = await client.post(f"{BASE}/messages/status/query", json=body, headers=partner.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_timeline_starts_with_the_acceptance(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner
) -> None:
    message_id = await send(client, partner)
    response = await client.get(f"{BASE}/messages/{message_id}/events?channel=SMS", headers=partner.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["customerMessageId"] == message_id
    assert [(e["deliveryStatus"], e["rawState"], e["source"]) for e in body["events"]] == [
        ("UNKNOWN", "ACCEPTED", "gateway")
    ]
    for headers, channel in ((other_partner.headers, "SMS"), (partner.headers, "RCS")):
        missing = await client.get(f"{BASE}/messages/{message_id}/events?channel={channel}", headers=headers)
        assert missing.status_code == 404


@pytest.mark.parametrize("weird", ["\x00", "msg_\x00", "é", "a b", "../etc/passwd", "x" * 65])
async def test_ids_that_cannot_be_ours_match_nothing(
    client: httpx.AsyncClient, partner: Partner, weird: str
) -> None:
    batch = await client.get(
        f"{BASE}/messages/status", params={"ids": weird, "channel": "SMS"}, headers=partner.headers
    )
    assert (batch.status_code, batch.json()) == (200, [])
    query = await client.post(
        f"{BASE}/messages/status/query", json={"channel": "SMS", "ids": [weird]}, headers=partner.headers
    )
    assert (query.status_code, query.json()) == (200, [])
