"""Storing what users sent (store/repositories/inbound.py), on the real store: owned numbers,
once-only storage (a redelivered SMS within its window, a repeated part, a webhook posted again),
concatenated parts in any order, the callback event, opt-out keywords, and the list's pages."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from partner_gateway.dispatch.inbound import StaleInboundParts
from partner_gateway.domain.inbound import DEFAULT_KEYWORDS, InboundMessage, InboundPart, OptKeywords
from partner_gateway.domain.statuses import Channel
from partner_gateway.runtime import Runtime
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.repositories import inbound
from partner_gateway.store.repositories.callback_settings import CallbackSettingsRepository
from partner_gateway.store.tables import callback_events, inbound_parts
from support import Partner

T0 = 1_795_000_000_000
USER = "+4915112345678"


def sms(text: str, at: int = T0, to: str = "12345", sender: str = USER) -> InboundMessage:
    return InboundMessage(
        Channel.SMS, "smpp:a", sender, to, text, "text", at, dedup_key=f"smpp:{sender}:{to}:{text}"
    )


def part(
    seq: int, total: int, payload: bytes, at: int = T0, reference: int = 7, coding: int = 8
) -> InboundPart:
    return InboundPart("smpp:a", USER, "12345", reference, total, seq, coding, payload, at)


def whatsapp(wamid: str, text: str, at: int = T0) -> InboundMessage:
    return InboundMessage(
        Channel.WHATSAPP, "whatsapp", USER, "15550001234", text, "text", at, f"whatsapp:{wamid}", wamid
    )


async def store(
    runtime: Runtime,
    item: InboundMessage | InboundPart,
    now: int = T0,
    keywords: OptKeywords = DEFAULT_KEYWORDS,
) -> inbound.Stored:
    async with runtime.database.write() as connection:
        return await inbound.store_inbound(connection, item, keywords, now)


async def listed(
    runtime: Runtime, company_id: str, **filters: object
) -> list[inbound.InboundMessageResponse]:
    async with runtime.database.read() as connection:
        items, _ = await inbound.inbound_page(
            connection, inbound.InboundFilter(company_id, **filters), None, 100
        )  # type: ignore[arg-type]
    return items


async def assign(runtime: Runtime, company_id: str, number: str, channel: Channel = Channel.SMS) -> bool:
    async with runtime.database.write() as connection:
        return await inbound.assign_number(connection, company_id, channel, number, T0)


async def test_numbers_are_unique_per_channel_and_normalised(
    runtime: Runtime, partner: Partner, other_partner: Partner
) -> None:
    assert await assign(runtime, partner.company_id, "+49 151 1234-5678")
    assert not await assign(runtime, partner.company_id, "4915112345678")  # the same, already there
    with pytest.raises(inbound.NumberTaken) as taken:
        await assign(runtime, other_partner.company_id, "+4915112345678")
    assert taken.value.owner == partner.company_id
    assert await assign(
        runtime, other_partner.company_id, "+4915112345678", Channel.WHATSAPP
    )  # another channel
    async with runtime.database.write() as connection:
        assert await inbound.numbers_of(connection, partner.company_id) == [("SMS", "4915112345678", T0)]
        assert not await inbound.release_number(
            connection, other_partner.company_id, Channel.SMS, "4915112345678"
        )
        assert await inbound.release_number(connection, partner.company_id, Channel.SMS, "+4915112345678")
        assert await inbound.owner_of(connection, Channel.SMS, "4915112345678") is None


async def test_an_inbound_to_nobodys_number_is_not_stored(runtime: Runtime, partner: Partner) -> None:
    assert (await store(runtime, sms("hello"))).outcome == "unassigned"
    assert await listed(runtime, partner.company_id) == []


async def test_an_sms_redelivered_within_its_window_is_stored_once(
    runtime: Runtime, partner: Partner
) -> None:
    await assign(runtime, partner.company_id, "12345")
    first = await store(runtime, sms("yes"), T0)
    assert first.outcome == "stored"
    assert first.company_id == partner.company_id
    assert (await store(runtime, sms("yes", T0 + 1_000))).outcome == "duplicate"
    # Across the window's boundary, still within its length: the window before is checked too.
    boundary = (T0 // inbound.SMS_DEDUP_WINDOW_MS + 1) * inbound.SMS_DEDUP_WINDOW_MS
    assert (await store(runtime, sms("yes", boundary + 1))).outcome == "duplicate"
    # The same words again, two windows later: a new message.
    assert (await store(runtime, sms("yes", T0 + 2 * inbound.SMS_DEDUP_WINDOW_MS + 1))).outcome == "stored"
    assert (await store(runtime, sms("no", T0 + 2_000))).outcome == "stored"
    assert [item.text for item in await listed(runtime, partner.company_id)] == ["yes", "no", "yes"]


async def test_a_webhook_posted_again_is_stored_once(runtime: Runtime, partner: Partner) -> None:
    await assign(runtime, partner.company_id, "+15550001234", Channel.WHATSAPP)
    assert (await store(runtime, whatsapp("wamid.A", "hi"))).outcome == "stored"
    # Days later Meta posts it again: a provider id is unique for ever.
    assert (await store(runtime, whatsapp("wamid.A", "hi", T0 + 3 * 86_400_000))).outcome == "duplicate"
    [item] = await listed(runtime, partner.company_id)
    assert (item.channel, item.from_, item.to, item.provider_message_id) == (
        Channel.WHATSAPP, USER, "+15550001234", "wamid.A",
    )  # fmt: skip


async def test_concatenated_parts_in_any_order_and_repeated_make_one_message(
    runtime: Runtime, partner: Partner
) -> None:
    await assign(runtime, partner.company_id, "12345")
    text = "Grüße ☃ aus Köln 👋"
    data = text.encode("utf-16-be")
    # Cut inside the surrogate pair of 👋: the octets are joined before they are decoded.
    pieces = [data[:10], data[10:33], data[33:]]
    assert (await store(runtime, part(3, 3, pieces[2]))).outcome == "part"
    assert (await store(runtime, part(1, 3, pieces[0]))).outcome == "part"
    assert (await store(runtime, part(1, 3, pieces[0]))).outcome == "part"  # repeated: kept once
    assert (await store(runtime, part(1, 3, b"x", reference=8))).outcome == "part"  # another message's
    done = await store(runtime, part(2, 3, pieces[1], T0 + 500))
    assert done.outcome == "stored"
    [item] = await listed(runtime, partner.company_id)
    assert (item.text, item.parts, item.type, item.provider_message_id) == (text, 3, "text", None)
    # The whole message redelivered part by part: its parts wait again, the message is not stored twice.
    for seq in (1, 2):
        await store(runtime, part(seq, 3, pieces[seq - 1], T0 + 1_000))
    assert (await store(runtime, part(3, 3, pieces[2], T0 + 1_000))).outcome == "duplicate"
    async with runtime.database.read() as connection:
        left = (await connection.execute(select(inbound_parts.c.seq))).scalars().all()
    assert left == [1]  # reference 8's lone part, dropped after a day
    async with runtime.database.write() as connection:
        assert await inbound.drop_stale_parts(connection, T0 + inbound.STALE_PARTS_MS + 1) == 1


async def test_the_callback_event_is_written_when_the_company_has_a_url(
    runtime: Runtime, partner: Partner
) -> None:
    await assign(runtime, partner.company_id, "12345")
    no_url = await store(runtime, sms("before the URL"))
    async with runtime.database.write() as connection:
        await CallbackSettingsRepository(connection, runtime.callback_secrets).set_url(
            partner.company_id, "https://partner.example/cb", T0
        )
    with_url = await store(runtime, sms("after the URL", T0 + 5), now=T0 + 10)
    async with runtime.database.read() as connection:
        rows = (await connection.execute(select(callback_events))).all()
    assert [row.message_id for row in rows] == [with_url.inbound_id]
    [row] = rows
    assert no_url.inbound_id is not None
    body = json.loads(row.body)
    assert body == {
        "id": with_url.inbound_id, "channel": "SMS", "from": USER, "to": "12345", "type": "text",
        "text": "after the URL", "receivedAt": "2026-11-18T11:06:40.005Z", "parts": 1,
        "providerMessageId": None, "event": "inbound", "eventId": row.id,
        "occurredAt": "2026-11-18T11:06:40.010Z", "sequence": 1,
    }  # fmt: skip
    assert (row.company_id, row.url, row.state, row.sequence) == (partner.company_id, None, "pending", 1)


async def test_keywords_opt_out_and_in_per_company_and_channel(
    runtime: Runtime, partner: Partner, other_partner: Partner
) -> None:
    await assign(runtime, partner.company_id, "12345")
    await assign(runtime, other_partner.company_id, "67890")
    assert (await store(runtime, sms("Stop.", T0))).opt == "opt_out"
    assert (await store(runtime, sms("stop sending me offers", T0 + 1))).opt is None  # not a keyword alone

    async def opted(company_id: str, channel: Channel = Channel.SMS) -> bool:
        async with runtime.database.read() as connection:
            return await inbound.is_opted_out(connection, company_id, channel, USER)

    assert await opted(partner.company_id)
    assert not await opted(other_partner.company_id)  # the other company's list is its own
    assert not await opted(partner.company_id, Channel.WHATSAPP)  # and so is each channel
    assert (await store(runtime, sms("unstop", T0 + 2))).opt == "opt_in"
    assert not await opted(partner.company_id)
    custom = OptKeywords.of(["HALT"], ["GO"])
    assert (await store(runtime, sms("STOP", T0 + 3, to="67890"), keywords=custom)).opt is None
    assert (await store(runtime, sms("halt", T0 + 4, to="67890"), keywords=custom)).opt == "opt_out"
    assert await opted(other_partner.company_id)


async def test_the_list_is_the_companys_own_filtered_and_paged(
    runtime: Runtime, partner: Partner, other_partner: Partner
) -> None:
    await assign(runtime, partner.company_id, "12345")
    await assign(runtime, partner.company_id, "+15550001234", Channel.WHATSAPP)
    await assign(runtime, other_partner.company_id, "67890")
    for i in range(5):
        await store(runtime, sms(f"sms {i}", T0 + i * 1_000))
    await store(runtime, whatsapp("wamid.B", "wa", T0 + 500))
    await store(runtime, sms("theirs", T0, to="67890"))
    await store(runtime, sms("someone else", T0 + 100, sender="+4917000000000"))
    mine = await listed(runtime, partner.company_id)
    assert [item.text for item in mine] == ["sms 4", "sms 3", "sms 2", "sms 1", "wa", "someone else", "sms 0"]
    assert [i.text for i in await listed(runtime, other_partner.company_id)] == ["theirs"]
    assert [i.text for i in await listed(runtime, partner.company_id, channel=Channel.WHATSAPP)] == ["wa"]
    assert [i.text for i in await listed(runtime, partner.company_id, sender="+4917000000000")] == [
        "someone else"
    ]
    assert [i.text for i in await listed(runtime, partner.company_id, recipient="+15550001234")] == ["wa"]
    window = await listed(runtime, partner.company_id, start=T0 + 1_000, end=T0 + 3_000)
    assert [i.text for i in window] == ["sms 2", "sms 1"]
    pages, after = [], None
    while True:
        async with runtime.database.read() as connection:
            items, after = await inbound.inbound_page(
                connection, inbound.InboundFilter(partner.company_id), after, 3
            )
        pages.append([item.text for item in items])
        if after is None:
            break
    assert pages == [["sms 4", "sms 3", "sms 2"], ["sms 1", "wa", "someone else"], ["sms 0"]]


async def test_the_dispatchers_chore_drops_parts_whose_siblings_never_came(
    runtime: Runtime, partner: Partner
) -> None:
    await assign(runtime, partner.company_id, "12345")
    await store(runtime, part(1, 2, b"\x00a", T0))
    await store(runtime, part(1, 2, b"\x00b", T0 + 1_000, reference=9))
    batcher = WriteBatcher(runtime.database)
    chore = StaleInboundParts(batcher)
    assert await chore.drop_once(T0 + inbound.STALE_PARTS_MS) == 0  # not a day old yet
    assert await chore.drop_once(T0 + inbound.STALE_PARTS_MS + 1) == 1
    assert await chore.drop_once(T0 + inbound.STALE_PARTS_MS + 1_001) == 1
    assert chore.dropped == 2
