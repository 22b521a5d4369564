"""The opt-out list and the stats through the SDK against a served gateway: entries put, read,
listed across pages and removed (each call's answer as the gateway gives it, and a repeat of a
PUT or DELETE leaving the list as the first did); stats after a few messages were delivered and
one refused as opted out, by day and by hour, typed."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from partner_gateway_sdk import (
    AsyncClient,
    BadRequestError,
    ChannelStats,
    Client,
    ErrorCodeCount,
    MessageStatus,
    OptOut,
    Stats,
)
from sdk_support import Company

NUMBERS = [f"+49151123456{index:02d}" for index in range(20, 25)]
DELIVERED_NUMBER = "+4915112345630"  # the simulators deliver a number ending 00 to 89 (SPEC §6)
BLOCKED_NUMBER = "+4915112345631"


def wait_final(client: Client, message_id: str) -> MessageStatus:
    deadline = time.monotonic() + 60
    while True:
        status = client.status(message_id, "SMS")
        if status.is_final or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_opt_outs_are_put_read_listed_across_pages_and_removed(company: Company) -> None:
    answers: list[httpx.Response] = []
    http = httpx.Client(event_hooks={"response": [answers.append]})
    with http, Client(company.api_key, base_url=company.url, http_client=http) as client:
        assert client.get_opt_out("SMS", NUMBERS[0]) is None
        added = client.add_opt_out("SMS", NUMBERS[0])
        assert isinstance(added, OptOut)
        assert (added.channel, added.number, added.source) == ("SMS", NUMBERS[0], "api")
        assert added.created_at.tzinfo is not None
        assert answers[-1].status_code == 201
        assert answers[-1].request.url.raw_path.endswith(b"/opt-outs/SMS/%2B" + NUMBERS[0][1:].encode())
        again = client.add_opt_out("SMS", NUMBERS[0])  # as a retry after a lost answer would
        assert answers[-1].status_code == 200
        assert again == added
        assert client.get_opt_out("SMS", NUMBERS[0]) == added
        assert client.get_opt_out("RCS", NUMBERS[0]) is None  # per channel

        for number in NUMBERS[1:]:
            client.add_opt_out("SMS", number)
        client.add_opt_out("RCS", NUMBERS[4])
        answers.clear()
        listed = list(client.opt_outs(page_size=2))
        assert [(entry.channel, entry.number) for entry in listed] == [
            *(("RCS", NUMBERS[4]),),
            *(("SMS", number) for number in NUMBERS),
        ]  # by channel, then number
        assert len(answers) == 3  # 2 + 2 + 2
        assert [entry.number for entry in client.opt_outs(channel="RCS")] == [NUMBERS[4]]
        pages = list(client.opt_out_pages(channel="SMS", page_size=3))
        assert [len(page.items) for page in pages] == [3, 2]
        resumed = next(iter(client.opt_out_pages(channel="SMS", page_size=3, cursor=pages[0].next_cursor)))
        assert resumed == pages[1]

        # Opted out: accepted, then ERROR gw:opted-out without a provider.
        refused = wait_final(client, client.send_sms(NUMBERS[0], "an offer").customer_message_id)
        assert (refused.delivery_status, refused.error_code) == ("ERROR", "gw:opted-out")

        assert client.remove_opt_out("SMS", NUMBERS[0]) is True
        assert answers[-1].status_code == 204
        assert client.remove_opt_out("SMS", NUMBERS[0]) is False  # the answer a repeat gets: 404
        assert answers[-1].status_code == 404
        assert client.get_opt_out("SMS", NUMBERS[0]) is None
        assert len(list(client.opt_outs())) == 5

        with pytest.raises(BadRequestError) as wrong:
            client.add_opt_out("FAX", "0151 1234567")
        assert {error.field for error in wrong.value.errors} == {"channel", "number"}
        with pytest.raises(BadRequestError) as wrong_limit:
            list(client.opt_outs(page_size=0))
        assert [error.field for error in wrong_limit.value.errors] == ["limit"]


async def test_opt_outs_through_the_async_client(company: Company) -> None:
    async with AsyncClient(company.api_key, base_url=company.url) as client:
        added = await client.add_opt_out("WHATSAPP", NUMBERS[1])
        assert await client.get_opt_out("WHATSAPP", NUMBERS[1]) == added
        await client.add_opt_out("WHATSAPP", NUMBERS[2])
        assert [entry.number async for entry in client.opt_outs(page_size=1)] == NUMBERS[1:3]
        assert [len(page.items) async for page in client.opt_out_pages(page_size=1)] == [1, 1]
        assert await client.remove_opt_out("WHATSAPP", NUMBERS[1]) is True
        assert await client.remove_opt_out("WHATSAPP", NUMBERS[1]) is False
        assert [entry.number async for entry in client.opt_outs()] == [NUMBERS[2]]


def test_stats_after_messages_are_delivered_and_one_is_refused(company: Company) -> None:
    with Client(company.api_key, base_url=company.url) as client:
        client.add_opt_out("SMS", BLOCKED_NUMBER)
        sent = [client.send_sms(DELIVERED_NUMBER, f"stats {index}") for index in range(3)]
        sent.append(client.send_sms(BLOCKED_NUMBER, "to an opted-out number"))
        client.send_rcs(DELIVERED_NUMBER, text="another channel")
        final = [wait_final(client, message.customer_message_id) for message in sent]
        assert [status.delivery_status for status in final] == ["DELIVERED"] * 3 + ["ERROR"]

        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        by_day = client.stats(
            today.date() - timedelta(days=1), today.date() + timedelta(days=2), channel="SMS"
        )
        assert isinstance(by_day, Stats)
        assert (by_day.bucket, by_day.start_date, by_day.end_date) == (
            "day", today - timedelta(days=1), today + timedelta(days=2),
        )  # fmt: skip
        assert [bucket.start for bucket in by_day.buckets] == [today + timedelta(days=n) for n in (-1, 0, 1)]
        assert [bucket.end - bucket.start for bucket in by_day.buckets] == [timedelta(days=1)] * 3
        busy = [bucket for bucket in by_day.buckets if bucket.channels]
        # All four were accepted within the test, so in one day (unless it ran across midnight UTC).
        channels = [channel for bucket in busy for channel in bucket.channels]
        assert {channel.channel for channel in channels} == {"SMS"}
        assert sum(channel.total for channel in channels) == 4
        if len(busy) == 1:
            sms = busy[0].channel("SMS")
            assert isinstance(sms, ChannelStats)
            assert busy[0].channel("RCS") is None  # filtered out
            assert sms.counts == {"DELIVERED": 3, "ERROR": 1}
            assert sms.delivery_rate == pytest.approx(0.75)
            assert sms.error_codes == [ErrorCodeCount("gw:opted-out", 1)]
            assert sms.latency_p50_ms is not None
            assert sms.latency_p95_ms is not None
            assert sms.latency_p50_ms <= sms.latency_p95_ms

        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        by_hour = client.stats(hour - timedelta(hours=2), hour + timedelta(hours=1), bucket="hour")
        assert (by_hour.bucket, len(by_hour.buckets)) == ("hour", 3)
        totals = {channel.channel: channel.total for bucket in by_hour.buckets for channel in bucket.channels}
        assert totals == {"SMS": 4, "RCS": 1}
        assert by_hour.raw["bucket"] == "hour"

        with pytest.raises(BadRequestError) as refused:
            client.stats(hour + timedelta(minutes=5), hour, bucket="hour")
        assert [error.field for error in refused.value.errors] == ["startDate"]
        with pytest.raises(BadRequestError) as too_long:
            client.stats(today.date(), today.date() + timedelta(days=40))
        assert [error.field for error in too_long.value.errors] == ["endDate"]

    async def through_async() -> Stats:
        async with AsyncClient(company.api_key, base_url=company.url) as async_client:
            return await async_client.stats(today, today + timedelta(days=1), channel="SMS", bucket="day")

    assert asyncio.run(through_async()).buckets == [
        bucket for bucket in by_day.buckets if bucket.start == today
    ]
