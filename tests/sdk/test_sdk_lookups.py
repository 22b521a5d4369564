"""Status of many and history through the SDK against a served gateway: 1,200 ids split into
URL-sized GETs or POST chunks (each request within its bound, each id in exactly one), merged in
the order asked; history pages followed lazily by their cursor."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from e2e_support import Gateway
from partner_gateway.domain.ids import new_message_id
from partner_gateway_sdk import AsyncClient, BadRequestError, Client, MessageStatus
from sdk_support import Company
from support import cli

SENT = 400
UNKNOWN = 800  # well-formed ids of no message: left out of the answer, as the gateway leaves them


class Recorder:
    """The requests a client made (an httpx event hook: what went on the wire)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def sync(self, request: httpx.Request) -> None:
        self.requests.append(request)

    async def hook(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def ids_of(self, request: httpx.Request) -> list[str]:
        if request.method == "GET":
            return parse_qs(urlsplit(str(request.url)).query)["ids"][0].split(",")
        return list(json.loads(request.content)["ids"])


async def send_many(client: AsyncClient, count: int) -> list[str]:
    room = asyncio.Semaphore(16)

    async def one(index: int) -> str:
        async with room:
            sent = await client.send_sms(f"+49151123456{index % 90:02d}", f"batch {index}")
            return sent.customer_message_id

    return list(await asyncio.gather(*(one(index) for index in range(count))))


@pytest.fixture(scope="module")
def loaded(sdk_gateway: Gateway) -> tuple[Company, list[str], list[str]]:
    """A company with SENT messages (made once for the module: the tests only read them), and
    the 1,200 ids to ask: its ids and unknown ones, interleaved."""
    created = json.loads(cli(sdk_gateway.env, "company", "create", "Batch Ltd", "--json").stdout)
    company = Company(sdk_gateway, created["companyId"], created["apiKey"])
    company.set_limits(sends="5000/5000", reads="5000/10000")

    async def work() -> list[str]:
        async with AsyncClient(company.api_key, base_url=company.url) as client:
            return await send_many(client, SENT)

    sent = asyncio.run(work())
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    unknown = [new_message_id(start + index) for index in range(UNKNOWN)]
    asked = list(itertools.chain.from_iterable(zip(sent, unknown[:SENT], strict=True))) + unknown[SENT:]
    assert len(asked) == 1_200
    return company, sent, asked


def check_split(recorder: Recorder, asked: list[str], *, method: str, max_url_length: int = 0) -> None:
    assert {request.method for request in recorder.requests} == {method}
    seen = [item for request in recorder.requests for item in recorder.ids_of(request)]
    assert sorted(seen) == sorted(asked)  # each id in exactly one request
    if max_url_length:
        for request in recorder.requests:
            assert len(request.url.raw_path) <= max_url_length  # path and query: the request target


def test_1200_ids_in_url_sized_gets_are_merged_in_the_order_asked(
    loaded: tuple[Company, list[str], list[str]],
) -> None:
    company, sent, asked = loaded
    recorder = Recorder()
    http = httpx.Client(event_hooks={"request": [recorder.sync]})
    with (
        http,
        Client(company.api_key, base_url=company.url, max_url_length=4_000, http_client=http) as client,
    ):
        found = client.statuses([*asked, " ", "", asked[0]], "SMS", method="get")
    assert [status.customer_message_id for status in found] == sent
    assert all(isinstance(status, MessageStatus) and status.channel == "SMS" for status in found)
    with (
        Client(company.api_key, base_url=company.url, max_url_length=4_000) as threaded,
        pytest.raises(BadRequestError),
    ):
        threaded.statuses(asked, "FAX", method="get")
    assert len(recorder.requests) >= 8  # 1,200 ids of 30 bytes do not fit in fewer 4,000-byte targets
    check_split(recorder, asked, method="GET", max_url_length=4_000)


async def test_1200_ids_in_concurrent_post_chunks_and_the_default_choice(
    loaded: tuple[Company, list[str], list[str]],
) -> None:
    company, sent, asked = loaded
    recorder = Recorder()
    async with (
        httpx.AsyncClient(event_hooks={"request": [recorder.hook]}) as http,
        AsyncClient(company.api_key, base_url=company.url, query_chunk_size=250, http_client=http) as client,
    ):
        found = await client.statuses(asked, "SMS", method="post")
        assert [status.customer_message_id for status in found] == sent
        assert len(recorder.requests) == 5  # 1,200 / 250, run at once (max_concurrency 4)
        check_split(recorder, asked, method="POST")
        assert all(len(recorder.ids_of(request)) <= 250 for request in recorder.requests)

        # auto: one GET when every id fits in one URL (the default 8,000 bytes), POST chunks past it
        recorder.requests.clear()
        few = await client.statuses(sent[:50], "SMS")
        assert [status.customer_message_id for status in few] == sent[:50]
        assert [request.method for request in recorder.requests] == ["GET"]
        recorder.requests.clear()
        assert [status.customer_message_id for status in await client.statuses(asked, "SMS")] == sent
        assert [request.method for request in recorder.requests] == ["POST"] * 5
        assert await client.statuses([], "SMS") == []
        with pytest.raises(BadRequestError) as refused:  # the chunk's own error, not an ExceptionGroup
            await client.statuses(asked, "FAX", method="post")
        assert [error.field for error in refused.value.errors] == ["channel"]


def test_the_gateway_s_own_target_limit_is_served_and_another_company_s_ids_are_left_out(
    loaded: tuple[Company, list[str], list[str]],
) -> None:
    company, sent, asked = loaded
    with Client(company.api_key, base_url=company.url, max_url_length=65_535) as client:
        assert [status.customer_message_id for status in client.statuses(asked, "SMS", method="get")] == sent
    other = json.loads(cli(company.gateway.env, "company", "create", "Other Ltd", "--json").stdout)
    with Client(other["apiKey"], base_url=company.url) as stranger:
        assert stranger.statuses(asked, "SMS") == []


def test_history_is_followed_page_by_page_lazily_and_with_its_filters(company: Company) -> None:
    recorder = Recorder()
    http = httpx.Client(event_hooks={"request": [recorder.sync]})
    with http, Client(company.api_key, base_url=company.url, http_client=http) as client:
        sms = [client.send_sms("+4915112345601", f"sms {index}").customer_message_id for index in range(23)]
        rcs = [
            client.send_rcs("+4915112345602", text=f"rcs {index}").customer_message_id for index in range(4)
        ]
        recorder.requests.clear()

        everything = list(client.history(page_size=10))
        assert [status.customer_message_id for status in everything] == list(
            reversed(sms + rcs)
        )  # newest first
        assert len(recorder.requests) == 3  # 10 + 10 + 7
        cursors = [parse_qs(request.url.query.decode()).get("cursor") for request in recorder.requests]
        assert cursors[0] is None
        assert all(cursors[1:])

        pages = list(client.history_pages(channel="SMS", to="+4915112345601", page_size=10))
        assert [len(page.items) for page in pages] == [10, 10, 3]
        assert [page.next_cursor is None for page in pages] == [False, False, True]
        assert [status.customer_message_id for page in pages for status in page.items] == list(reversed(sms))

        # a saved cursor resumes there
        resumed = next(
            iter(
                client.history_pages(
                    channel="SMS", to="+4915112345601", page_size=10, cursor=pages[0].next_cursor
                )
            )
        )
        assert resumed.items == pages[1].items

        recorder.requests.clear()
        first_three = list(itertools.islice(client.history(page_size=10), 3))
        assert len(first_three) == 3
        assert len(recorder.requests) == 1  # lazy: no page is asked for before it is reached

        window = list(
            client.history(
                start_date=datetime.now(UTC) - timedelta(hours=1),
                end_date=datetime.now(UTC) + timedelta(minutes=1),
                channel="RCS",
                delivery_status=["UNKNOWN", "SENT", "RECEIVED", "DELIVERED"],
            )
        )
        assert {status.customer_message_id for status in window} == set(rcs)

        with pytest.raises(BadRequestError) as refused:
            next(client.history(page_size=5_000))
        assert [error.field for error in refused.value.errors] == ["limit"]
        with pytest.raises(ValueError, match="timezone"):
            next(client.history(start_date=datetime(2026, 1, 1)))  # naive: refused, not guessed


async def test_the_async_history_iterates_across_pages(company: Company) -> None:
    async with AsyncClient(company.api_key, base_url=company.url) as client:
        sent = [
            (await client.send_whatsapp("+4915112345603", text=f"wa {index}")).customer_message_id
            for index in range(7)
        ]
        seen = [
            status.customer_message_id async for status in client.history(channel="WHATSAPP", page_size=3)
        ]
    assert seen == list(reversed(sent))
