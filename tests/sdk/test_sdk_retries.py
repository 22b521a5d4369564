"""Retries against a served gateway: an answer lost on the way back (a proxy in front that
forwards the send, then answers 503 in its place) is retried with the same Idempotency-Key and
answered by the gateway's replay, one message in the store; a real rate limit's 429 is waited
out for its Retry-After; what must not be retried is not."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from partner_gateway.embedded_server import EmbeddedServer
from partner_gateway_sdk import (
    APIConnectionError,
    AsyncClient,
    Client,
    RateLimitError,
    RetryPolicy,
    ServiceUnavailableError,
)
from sdk_support import Company
from support import free_port

NUMBER = "+4915112345611"


class LosingProxy:
    """A reverse proxy to the gateway that, `lose` times, forwards the request and then answers
    503 (Retry-After: 1) instead of the gateway's answer: the answer lost, the work done."""

    def __init__(self, upstream: str, lose: int = 1, status: int = 503) -> None:
        self.upstream = upstream
        self.lose = lose
        self.status = status
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.http = httpx.AsyncClient(base_url=upstream, timeout=30)

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        target = scope["raw_path"].decode() + (
            "?" + scope["query_string"].decode() if scope["query_string"] else ""
        )
        self.seen.append((f"{scope['method']} {target}", headers, body))
        forwarded = {name: value for name, value in headers.items() if name.lower() != "host"}
        answer = await self.http.request(scope["method"], target, headers=forwarded, content=body)
        if self.lose > 0:
            self.lose -= 1
            status, out, content = self.status, [(b"retry-after", b"1")], b"upstream went away"
        else:
            status = answer.status_code
            out = [
                (name.encode(), value.encode())
                for name, value in answer.headers.items()
                if name.lower()
                not in ("content-length", "content-encoding", "transfer-encoding", "connection")
            ]
            content = answer.content
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*out, (b"content-length", str(len(content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})  # fmt: skip


async def test_a_lost_answer_is_retried_with_the_same_key_and_answered_by_the_replay(
    company: Company, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = LosingProxy(company.url)
    async with EmbeddedServer(proxy, name="losing proxy", stop_timeout=1.0) as port:
        caplog.set_level(logging.INFO, logger="partner_gateway_sdk")
        async with AsyncClient(company.api_key, base_url=f"http://127.0.0.1:{port}") as client:
            sent = await client.send_sms(NUMBER, "sent once, answered twice")
    await proxy.http.aclose()

    sends = [(target, headers, body) for target, headers, body in proxy.seen if target.startswith("POST")]
    assert len(sends) == 2
    keys = {headers["idempotency-key"] for _, headers, _ in sends}
    assert keys == {sent.idempotency_key}
    assert sends[0][2] == sends[1][2]  # the same body: the gateway replays rather than refuses
    assert sent.replayed  # the gateway's answer to the retry: the first one, replayed
    assert "answered 503; retry 1 of 2 in 1.00 s" in caplog.text  # Retry-After, as the proxy said

    with Client(company.api_key, base_url=company.url) as direct:
        stored = list(direct.history())
    assert [message.customer_message_id for message in stored] == [sent.customer_message_id]


def test_the_sync_client_retries_the_same_way(company: Company) -> None:
    async def scenario() -> tuple[LosingProxy, str, bool]:
        proxy = LosingProxy(company.url, lose=2)
        async with EmbeddedServer(proxy, name="losing proxy", stop_timeout=1.0) as port:
            # The sync client blocks: it runs in a thread while this loop serves the proxy.
            def send() -> tuple[str, bool]:
                with Client(company.api_key, base_url=f"http://127.0.0.1:{port}") as client:
                    sent = client.send_whatsapp(NUMBER, text="twice lost")
                return sent.customer_message_id, sent.replayed

            message_id, replayed = await asyncio.to_thread(send)
        await proxy.http.aclose()
        return proxy, message_id, replayed

    proxy, message_id, replayed = asyncio.run(scenario())
    posts = [headers["idempotency-key"] for target, headers, _ in proxy.seen if target.startswith("POST")]
    assert len(posts) == 3  # twice retried (the default)
    assert len(set(posts)) == 1  # with one key
    assert replayed
    with Client(company.api_key, base_url=company.url) as direct:
        assert [message.customer_message_id for message in direct.history()] == [message_id]


async def test_past_the_retries_the_last_error_is_raised(company: Company) -> None:
    proxy = LosingProxy(company.url, lose=10)
    async with EmbeddedServer(proxy, name="losing proxy", stop_timeout=1.0) as port:
        policy = RetryPolicy(max_retries=1, initial_delay=0.01, max_delay=0.02)
        async with AsyncClient(company.api_key, base_url=f"http://127.0.0.1:{port}", retry=policy) as client:
            with pytest.raises(ServiceUnavailableError) as raised:
                await client.status("msg_01JDX3Q7T0Z5K9R3B2M8N4P6W1", "SMS")
    await proxy.http.aclose()
    assert raised.value.status == 503
    assert len(proxy.seen) == 2  # the first try and one retry


async def test_a_settings_change_is_not_retried_after_an_answer_that_may_be_lost(company: Company) -> None:
    """Its answer may be the only one showing a new secret: a 503 after it reached the gateway is raised."""
    proxy = LosingProxy(company.url, lose=1)
    async with (
        EmbeddedServer(proxy, name="losing proxy", stop_timeout=1.0) as port,
        AsyncClient(company.api_key, base_url=f"http://127.0.0.1:{port}") as client,
    ):
        with pytest.raises(ServiceUnavailableError):
            await client.set_callback_settings("http://127.0.0.1:9/callbacks")
    await proxy.http.aclose()
    assert len(proxy.seen) == 1


def test_a_rate_limited_send_waits_for_retry_after_then_goes_through(
    company: Company, caplog: pytest.LogCaptureFixture
) -> None:
    company.set_limits(sends="0.5/1", reads="500/1000")  # a send every 2 s, no burst beyond it
    caplog.set_level(logging.INFO, logger="partner_gateway_sdk")
    with Client(company.api_key, base_url=company.url) as client:
        first = client.send_sms(NUMBER, "first")
        second = client.send_sms(NUMBER, "second")  # refused 429 at first, admitted 2 s later
    assert first.customer_message_id != second.customer_message_id
    assert not second.replayed  # nothing of a refused request is kept: the retry is a new request
    assert "answered 429; retry 1 of 2 in 2.00 s" in caplog.text

    with (
        Client(company.api_key, base_url=company.url, max_retries=0) as impatient,
        pytest.raises(RateLimitError) as limited,
    ):
        impatient.send_sms(NUMBER, "third, right after the second")
    assert limited.value.retry_after in (1.0, 2.0)
    assert limited.value.problem == "rate-limited"
    assert limited.value.headers["ratelimit-policy"].startswith('"sends";q=1;')


def test_a_wait_longer_than_the_cap_is_not_waited_for(company: Company) -> None:
    company.set_limits(sends="0.01/1", reads="500/1000")  # the next send in 100 s
    policy = RetryPolicy(max_retry_after=5)
    with Client(company.api_key, base_url=company.url, retry=policy) as client:
        client.send_sms(NUMBER, "the burst")
        with pytest.raises(RateLimitError) as limited:
            client.send_sms(NUMBER, "refused")
    assert limited.value.retry_after is not None
    assert limited.value.retry_after > 5


def test_no_connection_is_retried_then_an_api_connection_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="partner_gateway_sdk")
    policy = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.02)
    with (
        Client("pgw_key", base_url=f"http://127.0.0.1:{free_port()}", retry=policy) as client,
        pytest.raises(APIConnectionError) as failed,
    ):
        client.status("msg_01JDX3Q7T0Z5K9R3B2M8N4P6W1", "SMS")
    assert isinstance(failed.value.__cause__, httpx.ConnectError)
    assert caplog.text.count("ConnectError; retry") == 2
