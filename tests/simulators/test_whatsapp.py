"""The WhatsApp Cloud API simulator over real HTTP on loopback: the real WhatsAppProvider sends to it,
and its webhooks come back to the provider's own handlers mounted in a small Litestar app on uvicorn,
which record into a list. Covers the SPEC §6 outcome table and the scripted misbehaviour."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from litestar import Litestar, Request, Response, get, post
from pydantic import SecretStr

from channels.harness import RecordingGuard, RecordingSink, secrets_kept_out_of_logs
from partner_gateway.channels.base import Accepted, OutboundMessage, SendError, StatusReport
from partner_gateway.channels.whatsapp.provider import WhatsAppProvider
from partner_gateway.channels.whatsapp.settings import WhatsAppSettings
from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.embedded_server import EmbeddedServer
from partner_gateway.simulators.whatsapp import (
    WhatsAppScript,
    WhatsAppSimulator,
    WhatsAppSimulatorConfig,
    fate_for,
)

WAIT = 5.0  # the bound on every wait for something that should happen
QUIET = 0.3  # how long to listen when something should NOT happen (webhooks follow within ~0.05 s)
TOKEN = "sim-token-Lk29xQ"
APP_SECRET = "sim-app-secret-77c1"
VERIFY_TOKEN = "sim-verify-Ppq0"
PHONE_NUMBER_ID = "109876543210987"
SECRETS = (TOKEN, APP_SECRET, VERIFY_TOKEN)
S = DeliveryStatus


@pytest.fixture(autouse=True)
def no_secret_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield from secrets_kept_out_of_logs(caplog, SECRETS)


@dataclass
class Received:
    """What the webhook receiver saw: (status answered, headers, raw body) per POST."""

    posts: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)


def receiver_app(provider: WhatsAppProvider, received: Received) -> Litestar:
    """`/webhooks/whatsapp` answered by the provider's own routes, as the gateway mounts them."""
    handlers = {route.method: route.handler for route in provider.webhook_routes()}

    async def call(method: Literal["GET", "POST"], request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await request.body()
        headers = {name.lower(): value for name, value in request.headers.items()}
        query = {name: value for name, value in request.query_params.items()}
        status, answer, media_type = await handlers[method](body, headers, query)
        if method == "POST":
            received.posts.append((status, headers, body))
        return Response(answer, status_code=status, media_type=media_type)

    @get("/webhooks/whatsapp")
    async def verify(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await call("GET", request)

    @post("/webhooks/whatsapp")
    async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await call("POST", request)

    return Litestar([verify, receive], openapi_config=None, logging_config=None)


@dataclass
class Rig:
    simulator: WhatsAppSimulator
    provider: WhatsAppProvider
    sink: RecordingSink
    received: Received
    counter: int = 0

    async def send(self, to: str, **content: Any) -> Accepted | SendError:
        self.counter += 1
        message_id = f"msg_01JDX3Q7T0Z5K9R3B2M8N4P{self.counter:03d}"
        message = OutboundMessage(
            message_id, "cmp_1", Channel.WHATSAPP, to, None, content or {"text": "Hi"}, 0, 0
        )
        try:
            return await self.provider.send(message, RecordingGuard())
        except SendError as error:
            return error

    def reports_for(self, wamid: str) -> list[StatusReport]:
        return [report for report in self.sink.reports if report.provider_key == wamid]


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def settled(rig: Rig) -> None:
    """Wait until the simulator has nothing left to post."""
    await wait_until(lambda: rig.simulator.pending_webhooks == 0, "the simulator's webhooks")


def provider_settings(base_url: str, token: str = TOKEN, **overrides: Any) -> WhatsAppSettings:
    return WhatsAppSettings(
        base_url=base_url,
        api_version="v21.0",
        phone_number_id=overrides.pop("phone_number_id", PHONE_NUMBER_ID),
        access_token=SecretStr(token),
        app_secret=SecretStr(APP_SECRET),
        verify_token=SecretStr(VERIFY_TOKEN),
        request_timeout_seconds=overrides.pop("timeout", 2.0),
    )


@contextlib.asynccontextmanager
async def rig(script: WhatsAppScript | None = None, **config: Any) -> AsyncIterator[Rig]:
    sink, received = RecordingSink(), Received()
    receiver = WhatsAppProvider(provider_settings("http://unused.test"))
    await receiver.start(sink)
    app = receiver_app(receiver, received)
    async with EmbeddedServer(app, name="webhook receiver", start_timeout=WAIT, stop_timeout=WAIT) as port:
        defaults: dict[str, Any] = {
            "access_token": TOKEN,
            "app_secret": APP_SECRET,
            "phone_number_id": PHONE_NUMBER_ID,
            "webhook_url": f"http://127.0.0.1:{port}/webhooks/whatsapp",
            "status_delay_seconds": 0.01,
            "webhook_retry_seconds": 0.01,
            "seed": 7,
        }
        simulator = WhatsAppSimulator(WhatsAppSimulatorConfig(**(defaults | config)), script=script)
        await simulator.start()
        provider = WhatsAppProvider(provider_settings(simulator.base_url))
        await provider.start(sink)
        try:
            yield Rig(simulator, provider, sink, received)
        finally:
            await provider.stop()
            await simulator.stop()
            await receiver.stop()


Row = tuple[str, S | None, str | None, bool]
DELIVERED_READ: list[Row] = [
    ("sent", S.RECEIVED, None, False),
    ("delivered", S.DELIVERED, None, False),
    ("read", S.DELIVERED, None, True),
]
# destination, content, then either the send's error code or the webhooks' (raw, status, error code, is_read)
OUTCOMES: list[tuple[str, dict[str, Any], str | list[Row]]] = [
    ("+4915112345600", {"text": "Hi"}, DELIVERED_READ),
    ("+4915112345601", {"text": "Hi"}, DELIVERED_READ[:2]),
    ("+4915112345689", {"text": "Hi"}, DELIVERED_READ[:2]),
    ("+4915112345698", {"text": "Hi"}, DELIVERED_READ),
    ("+4915112345690", {"text": "Hi"}, "whatsapp:100"),
    ("+4915112345691", {"text": "Hi"}, [("failed", S.ERROR, "whatsapp:131026", False)]),
    (
        "+4915112345692",
        {"text": "Hi"},
        [("sent", S.RECEIVED, None, False), ("failed", S.EXPIRED, "whatsapp:410", False)],
    ),
    ("+4915112345693", {"text": "Hi"}, [("sent", S.RECEIVED, None, False)]),
    ("+4915112345694", {"text": "Hi"}, []),
    ("+4915112345695", {"text": "Hi"}, [("warning", S.UNKNOWN, None, False)]),
    ("+4915112345696", {"text": "Hi"}, [("failed", S.ERROR, "whatsapp:131047", False)]),
    (
        "+4915112345696",
        {"template": {"name": "promo", "language": "en", "parameters": ["Ann"]}},
        [("failed", S.ERROR, "whatsapp:131049", False)],
    ),
]


@pytest.mark.parametrize(("to", "content", "expected"), OUTCOMES)
async def test_outcome_table(to: str, content: dict[str, Any], expected: str | list[Any]) -> None:
    async with rig() as r:
        outcome = await r.send(to, **content)
        if isinstance(expected, str):
            assert isinstance(outcome, SendError)
            assert (outcome.kind, outcome.code) == ("permanent", expected)
            await asyncio.sleep(QUIET)
            assert r.received.posts == []
            return
        assert isinstance(outcome, Accepted)
        wamid = outcome.parts[0].provider_key
        assert wamid.startswith("wamid.")
        await settled(r)
        if not expected:
            await asyncio.sleep(QUIET)
        reports = r.reports_for(wamid)
        assert [(x.raw_state, x.status, x.error_code, x.is_read) for x in reports] == expected
        assert all(x.message_id == "msg_01JDX3Q7T0Z5K9R3B2M8N4P001" for x in reports)
        assert [status for status, _, _ in r.received.posts] == [200] * len(expected)
        assert r.simulator.stats.webhooks_failed == 0


def test_fate_table_edges() -> None:
    assert fate_for("+1", template=False) == fate_for("+4915112345600", template=False)
    assert fate_for("+4915112345697", template=True)[1] == fate_for("+4915112345601", template=True)[1]
    assert fate_for("+4915112345690", template=True) == (False, ())


async def test_webhooks_are_signed_like_meta() -> None:
    async with rig() as r:
        outcome = await r.send("+4915112345601", template={"name": "order_update", "language": "de"})
        assert isinstance(outcome, Accepted)
        assert outcome.raw_state == "accepted"
        await settled(r)
    _, headers, body = r.received.posts[0]
    expected = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature-256"] == expected
    assert body.isascii()
    document = json.loads(body)
    assert document["object"] == "whatsapp_business_account"
    value = document["entry"][0]["changes"][0]["value"]
    assert value["metadata"]["phone_number_id"] == PHONE_NUMBER_ID
    [status] = value["statuses"]
    assert status["biz_opaque_callback_data"] == "msg_01JDX3Q7T0Z5K9R3B2M8N4P001"
    assert status["recipient_id"] == "4915112345601"
    assert status["timestamp"].isdigit()


async def test_a_wrong_token_is_refused_with_401() -> None:
    async with rig() as r:
        intruder = WhatsAppProvider(provider_settings(r.simulator.base_url, token="not-the-token"))
        await intruder.start(RecordingSink())
        try:
            outcome = await Rig(r.simulator, intruder, r.sink, r.received).send("+4915112345600")
        finally:
            await intruder.stop()
        assert isinstance(outcome, SendError)
        assert (outcome.kind, outcome.code, outcome.retry_after) == ("retry", "whatsapp:190", 300.0)
        assert (r.simulator.stats.unauthorized, r.simulator.stats.accepted) == (1, 0)
        await asyncio.sleep(QUIET)
        assert r.received.posts == []


async def test_a_wrong_phone_number_id_is_a_graph_error_100() -> None:
    async with rig() as r:
        other = WhatsAppProvider(provider_settings(r.simulator.base_url, phone_number_id="1"))
        await other.start(RecordingSink())
        try:
            outcome = await Rig(r.simulator, other, r.sink, r.received).send("+4915112345600")
        finally:
            await other.stop()
        assert isinstance(outcome, SendError)
        assert (outcome.kind, outcome.code) == ("permanent", "whatsapp:100")
        assert "100/33" in outcome.description


@pytest.mark.parametrize(
    ("body", "details"),
    [
        (b"{", "messaging_product must be whatsapp"),
        (
            {"messaging_product": "whatsapp", "to": "12", "type": "text", "text": {"body": "x"}},
            "Invalid parameter",
        ),
        (
            {"messaging_product": "whatsapp", "to": "4915112345600", "type": "text", "text": {}},
            "text.body is required",
        ),
        (
            {"messaging_product": "whatsapp", "to": "4915112345600", "type": "sticker"},
            "Unsupported message type",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "to": "4915112345600",
                "type": "template",
                "template": {"name": "x"},
            },
            "template.language.code is required",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "to": "4915112345600",
                "type": "template",
                "template": {"name": "x", "language": {"code": "en"}, "components": 5},
            },
            "Parameter 'text' is mandatory",
        ),
    ],
)
async def test_malformed_sends_get_graph_error_100(body: bytes | dict[str, Any], details: str) -> None:
    async with rig() as r, httpx.AsyncClient() as client:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await client.post(
            f"{r.simulator.base_url}/v21.0/{PHONE_NUMBER_ID}/messages",
            content=content,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == 100
        assert details in error["error_data"]["details"]
        assert r.simulator.stats.rejected == 1


async def test_out_of_order_webhooks() -> None:
    async with rig(WhatsAppScript(out_of_order=True)) as r:
        outcome = await r.send("+4915112345600")
        assert isinstance(outcome, Accepted)
        await settled(r)
        reports = r.reports_for(outcome.parts[0].provider_key)
    assert [x.raw_state for x in reports] == ["read", "delivered", "sent"]
    assert [x.occurred_at for x in reports] == sorted((x.occurred_at for x in reports), reverse=True)


async def test_read_without_delivered() -> None:
    async with rig(WhatsAppScript(read_without_delivered=True)) as r:
        outcome = await r.send("+4915112345600")
        assert isinstance(outcome, Accepted)
        await settled(r)
        assert [x.raw_state for x in r.reports_for(outcome.parts[0].provider_key)] == ["sent", "read"]


async def test_duplicate_webhooks_carry_the_same_dedup_keys() -> None:
    async with rig(WhatsAppScript(duplicate_webhooks=True)) as r:
        outcome = await r.send("+4915112345601")
        assert isinstance(outcome, Accepted)
        await settled(r)
        reports = r.reports_for(outcome.parts[0].provider_key)
    assert [x.raw_state for x in reports] == ["sent", "sent", "delivered", "delivered"]
    assert reports[0].dedup_key == reports[1].dedup_key != reports[2].dedup_key == reports[3].dedup_key
    assert r.received.posts[0][2] == r.received.posts[1][2]
    assert r.simulator.stats.webhooks_posted == 4


async def test_batched_statuses_come_in_one_webhook() -> None:
    async with rig(WhatsAppScript(batch_statuses=True)) as r:
        outcome = await r.send("+4915112345600")
        assert isinstance(outcome, Accepted)
        await settled(r)
        assert len(r.received.posts) == 1
        assert [x.raw_state for x in r.sink.reports] == ["sent", "delivered", "read"]


async def test_badly_signed_webhooks_are_refused_reposted_and_given_up() -> None:
    async with rig(WhatsAppScript(bad_signature=True), webhook_attempts=3) as r:
        outcome = await r.send("+4915112345601")
        assert isinstance(outcome, Accepted)
        await settled(r)
        stats = r.simulator.stats
        assert (stats.webhook_attempts, stats.webhooks_posted, stats.webhooks_failed) == (6, 0, 2)
        assert {status for status, _, _ in r.received.posts} == {401}
        assert r.sink.reports == []


async def test_a_webhook_the_gateway_could_not_record_is_reposted() -> None:
    async with rig() as r:
        r.sink.failures = 1
        outcome = await r.send("+4915112345693")
        assert isinstance(outcome, Accepted)
        await settled(r)
        assert [status for status, _, _ in r.received.posts] == [500, 200]
        assert [x.raw_state for x in r.sink.reports] == ["sent"]
        assert (r.simulator.stats.webhooks_posted, r.simulator.stats.webhooks_failed) == (1, 0)


async def test_an_unreachable_webhook_url_is_given_up_after_the_attempts() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    async with rig(webhook_url=f"http://127.0.0.1:{closed_port}/webhooks/whatsapp", webhook_attempts=2) as r:
        outcome = await r.send("+4915112345693")
        assert isinstance(outcome, Accepted)
        await settled(r)
        assert (r.simulator.stats.webhook_attempts, r.simulator.stats.webhooks_failed) == (2, 1)


async def test_scripted_throttling_and_server_errors() -> None:
    async with rig(WhatsAppScript(throttle_sends=1, fail_sends=1)) as r:
        throttled, failed, accepted = [await r.send("+4915112345694") for _ in range(3)]
        assert isinstance(throttled, SendError)
        assert (throttled.kind, throttled.code) == ("throttled", "whatsapp:130429")
        assert isinstance(failed, SendError)
        assert (failed.kind, failed.code) == ("retry", "whatsapp:131000")
        assert isinstance(accepted, Accepted)
        assert (r.simulator.stats.sends, r.simulator.stats.rejected, r.simulator.stats.accepted) == (3, 2, 1)


async def test_a_late_answer_is_ambiguous_though_the_message_went_out() -> None:
    async with rig(WhatsAppScript(answer_delay_seconds=0.5)) as r:
        impatient = WhatsAppProvider(provider_settings(r.simulator.base_url, timeout=0.1))
        await impatient.start(r.sink)
        try:
            outcome = await Rig(r.simulator, impatient, r.sink, r.received).send("+4915112345693")
        finally:
            await impatient.stop()
        assert isinstance(outcome, SendError)
        assert outcome.kind == "ambiguous"
        assert r.simulator.stats.accepted == 1
        await wait_until(lambda: bool(r.sink.reports), "the webhook of the message that did go out")
        assert r.sink.reports[0].message_id == "msg_01JDX3Q7T0Z5K9R3B2M8N4P001"


async def test_resends_are_counted_as_duplicates() -> None:
    async with rig() as r:
        for _ in range(2):
            assert isinstance(await r.send("+4915112345694", text="Same words"), Accepted)
        assert isinstance(await r.send("+4915112345694", text="Other words"), Accepted)
        stats = r.simulator.stats
        assert stats.duplicates == 1
        assert stats.sends_by_content[("4915112345694", "Same words")] == 2


async def test_verification_handshake_against_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    # uvicorn's access log shows the query, hub.verify_token included: this receiver keeps it off,
    # and the gateway's own server must redact it.
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "disabled", True)
    async with rig() as r:
        assert await r.simulator.verify_webhook(VERIFY_TOKEN)
        assert not await r.simulator.verify_webhook("wrong-token")


async def test_start_stop_and_config_checks() -> None:
    simulator = WhatsAppSimulator(WhatsAppSimulatorConfig(seed=1))
    with pytest.raises(RuntimeError):
        _ = simulator.base_url
    port = await simulator.start()
    try:
        assert simulator.base_url == f"http://127.0.0.1:{port}"
        with pytest.raises(RuntimeError):
            await simulator.start()
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{simulator.base_url}/v21.0/x/messages", content=b"{}")
        assert response.status_code == 401
    finally:
        await simulator.stop()
    await simulator.stop()  # twice is harmless
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = WhatsAppSimulator(WhatsAppSimulatorConfig(port=taken.getsockname()[1]))
        with pytest.raises(OSError, match="in use"):
            await busy.start()
    wrongs: list[dict[str, Any]] = [{"port": 70000}, {"webhook_attempts": 0}, {"status_delay_seconds": -1}]
    for wrong in wrongs:
        with pytest.raises(ValueError, match=r"cannot|must"):
            WhatsAppSimulatorConfig(**wrong)
