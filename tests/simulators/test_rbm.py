"""The RBM simulator over real HTTP on loopback, driven by the real RbmProvider (its token endpoint
too), with the provider's own webhook handler mounted in a tiny Litestar app as the receiver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar, Request, Response, post
from pydantic import SecretStr

from channels.harness import RecordingGuard, RecordingSink, secrets_kept_out_of_logs
from fixtures.rcs.rbm_kit import (
    CLIENT_TOKEN,
    SIGNED_JWT,
    key_pair,
    make_settings,
    outbound,
    secrets_of,
)
from partner_gateway.channels.base import SendError
from partner_gateway.channels.rcs.content import rbm_message_id
from partner_gateway.channels.rcs.provider import NOT_RCS_CAPABLE_CODE, RbmProvider
from partner_gateway.domain.ids import new_message_id
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.embedded_server import EmbeddedServer
from partner_gateway.simulators.rbm import (
    RbmSimConfig,
    RbmSimScript,
    RbmSimulator,
    check_agent_message,
    fate_for,
)

AGENT = "grüne-bäckerei_agent@rbm.goog"
WAIT_SECONDS = 5.0


def receiver(provider: RbmProvider) -> Litestar:
    (route,) = provider.webhook_routes()

    @post(f"/webhooks/{route.path}")
    async def hook(request: Request[Any, Any, Any]) -> Response[bytes]:
        status, body, content_type = await route.handler(
            await request.body(), dict(request.headers), dict(request.query_params)
        )
        return Response(body, status_code=status, media_type=content_type)

    return Litestar([hook], logging_config=None)


async def until(predicate: Callable[[], bool], timeout: float = WAIT_SECONDS) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)


@dataclass
class Rig:
    sim: RbmSimulator
    provider: RbmProvider
    sink: RecordingSink
    webhook_url: str

    async def send(self, to: str, content: dict[str, Any] | None = None, *, validity_s: float = 600) -> Any:
        message = outbound(
            content or {"text": "Grüße 👋"}, to=to, validity_s=validity_s, message_id=new_message_id(now_ms())
        )
        return message, await self.provider.send(message, RecordingGuard())

    def raw_states(self) -> list[str]:
        return [report.raw_state for report in self.sink.reports]


@contextlib.asynccontextmanager
async def rig(*, sink: RecordingSink | None = None, **config: Any) -> AsyncIterator[Rig]:
    defaults: dict[str, Any] = {
        "public_key_pem": key_pair()[1],
        "agent_id": AGENT,
        "service_account_email": "gateway@project.iam.gserviceaccount.com",
        "client_token": CLIENT_TOKEN,
        "event_delay_seconds": 0.02,
        "read_delay_seconds": 0.02,
        "webhook_retry_delay_seconds": 0.02,
    }
    sim = RbmSimulator(RbmSimConfig(**{**defaults, **config}))
    await sim.start()
    settings = make_settings(base_url=sim.base_url, token_uri=sim.token_uri)
    provider = RbmProvider(settings)
    sink = sink or RecordingSink()
    await provider.start(sink)
    try:
        async with EmbeddedServer(
            receiver(provider), name="webhook receiver", stop_timeout=WAIT_SECONDS
        ) as port:
            sim.webhook_url = f"http://127.0.0.1:{port}/webhooks/rcs"
            yield Rig(sim, provider, sink, sim.webhook_url)
    finally:
        await sim.stop()
        await provider.stop()


@pytest.fixture(autouse=True)
def no_secret_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # The simulator issues its own access tokens (ya29.sim-...), not the kit's ACCESS_TOKEN.
    secrets = [*secrets_of(make_settings())[:-1], "ya29.sim-", SIGNED_JWT]
    yield from secrets_kept_out_of_logs(caplog, secrets)


# -- the outcome table -------------------------------------------------------------------------------------

DELIVERY_ROWS = [
    ("+4915112345600", ["DELIVERED", "READ"], [DeliveryStatus.DELIVERED, DeliveryStatus.DELIVERED]),
    ("+4915112345649", ["DELIVERED", "READ"], [DeliveryStatus.DELIVERED, DeliveryStatus.DELIVERED]),
    ("+4915112345650", ["DELIVERED"], [DeliveryStatus.DELIVERED]),
    ("+4915112345689", ["DELIVERED"], [DeliveryStatus.DELIVERED]),
    ("+4915112345692", ["TTL_EXPIRATION_REVOKED"], [DeliveryStatus.EXPIRED]),
    ("+4915112345693", ["TTL_EXPIRATION_REVOKE_FAILED"], [DeliveryStatus.RECEIVED]),  # IS_TYPING: ignored
    ("+4915112345695", ["EVENT_TYPE_UNSPECIFIED"], [DeliveryStatus.UNKNOWN]),
]


@pytest.mark.parametrize(
    ("to", "raw_states", "statuses"), DELIVERY_ROWS, ids=[row[0][-2:] for row in DELIVERY_ROWS]
)
async def test_accepted_outcomes(
    to: str, raw_states: list[str], statuses: list[DeliveryStatus | None]
) -> None:
    async with rig() as r:
        message, accepted = await r.send(to, validity_s=1.3)  # ttl "1s" for the TTL rows
        assert accepted.raw_state == "accepted"
        await until(lambda: len(r.sink.reports) >= len(raw_states))
        await asyncio.sleep(0.1)  # nothing more comes
        assert r.raw_states() == raw_states
        assert [report.status for report in r.sink.reports] == statuses
        assert {report.provider_key for report in r.sink.reports} == {rbm_message_id(message.message_id)}
        assert r.sink.reports[-1].is_read == (raw_states[-1] == "READ")
        if to.endswith("93"):
            await until(lambda: r.sim.stats.events_posted == 2)  # IS_TYPING was posted, and acknowledged


async def test_94_gets_no_event_at_all() -> None:
    async with rig() as r:
        await r.send("+4915112345694", validity_s=1.1)
        await asyncio.sleep(0.5)
        assert r.sink.reports == []
        assert (r.sim.stats.accepted, r.sim.stats.webhook_attempts) == (1, 0)


@pytest.mark.parametrize(
    ("to", "config", "kind", "code"),
    [
        ("+4915112345690", {}, "permanent", NOT_RCS_CAPABLE_CODE),
        ("+4915112345691", {}, "permanent", "rbm:400"),
        ("+4915112345696", {}, "permanent", "rbm:400"),
        ("+4915112345696", {"rejection_status": 403}, "retry", "rbm:403"),
    ],
    ids=["90-not-rcs-capable", "91-device-cannot-take-it", "96-rejected", "96-as-403"],
)
async def test_refused_outcomes(to: str, config: dict[str, Any], kind: str, code: str) -> None:
    async with rig(**config) as r:
        with pytest.raises(SendError) as raised:
            await r.send(to)
        assert (raised.value.kind, raised.value.code) == (kind, code)
        await asyncio.sleep(0.1)
        assert r.sink.reports == []
        assert r.sim.stats.rejected == (2 if code == "rbm:403" else 1)  # a 403 is tried with a fresh token
        assert r.sim.stats.tokens_issued == (2 if code == "rbm:403" else 1)


def test_fate_table_edges() -> None:
    assert fate_for("+1").events == ("DELIVERED",)
    assert fate_for("+4915112345690").status == 404
    assert fate_for("+4915112345696", 403).google_status == "PERMISSION_DENIED"


# -- idempotency, auth, validation ----------------------------------------------------------------------


async def test_a_resend_is_409_and_treated_as_accepted() -> None:
    async with rig() as r:
        message, first = await r.send("+4915112345655")
        second = await r.provider.send(message, RecordingGuard())
        assert (first.raw_state, second.raw_state) == ("accepted", "already_exists")
        assert first.parts == second.parts
        stats = r.sim.stats
        assert (stats.sends, stats.accepted, stats.duplicates) == (2, 1, 1)
        assert list(stats.sends_by_content.values()) == [1]
        ((phone, content),) = stats.sends_by_content
        assert (phone, json.loads(content)) == ("+4915112345655", {"text": "Grüße 👋"})
        await until(lambda: len(r.sink.reports) == 1)
        await asyncio.sleep(0.1)
        assert r.raw_states() == ["DELIVERED"]  # one message, one fate


async def test_sends_are_counted_by_destination_and_content() -> None:
    async with rig() as r:
        for to, text in [("+4915112345651", "a"), ("+4915112345651", "a"), ("+4915112345652", "a")]:
            await r.send(to, {"text": text})
        assert sorted(r.sim.stats.sends_by_content.values()) == [1, 2]


async def test_a_bad_or_expired_token_is_401_and_the_provider_fetches_a_new_one() -> None:
    async with rig() as r:
        url = f"{r.sim.base_url}/v1/phones/+4915112345651/agentMessages"
        params = {"messageId": str(uuid.uuid4()), "agentId": AGENT}
        async with httpx.AsyncClient() as client:
            answer = await client.post(url, params=params, json={}, headers={"Authorization": "Bearer nope"})
        assert answer.status_code == 401
        assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
        await r.send("+4915112345651")
        r.sim.expire_tokens()
        await r.send("+4915112345652")
        assert (r.sim.stats.tokens_issued, r.sim.stats.unauthorized, r.sim.stats.accepted) == (2, 2, 2)


async def test_a_jwt_signed_by_another_key_gets_no_token() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    async with rig() as r:
        settings = r.provider.settings.model_copy(update={"service_account_private_key": SecretStr(pem)})
        impostor = RbmProvider(settings)
        with pytest.raises(SendError) as raised:
            await impostor.send(outbound({"text": "x"}), RecordingGuard())
        await impostor.stop()
        assert (raised.value.kind, raised.value.code) == ("retry", "rbm:token")
        assert (r.sim.stats.token_rejections, r.sim.stats.sends) == (1, 0)


@pytest.mark.parametrize(
    ("message_id", "body"),
    [
        ("not-a-uuid", {"contentMessage": {"text": "x"}}),
        (None, {"contentMessage": {}}),
        (None, {"contentMessage": {"text": "x", "richCard": {}}}),
        (None, {"contentMessage": {"text": "x"}, "ttl": "10 minutes"}),
        (None, {"contentMessage": {"text": "x", "suggestions": [{"reply": {"text": ""}}]}}),
        (
            None,
            {
                "contentMessage": {
                    "text": "x",
                    "suggestions": [{"action": {"text": "a", "postbackData": "b"}}],
                }
            },
        ),
    ],
    ids=["message-id", "no-content", "two-contents", "ttl", "blank-suggestion", "action-without-kind"],
)
async def test_malformed_requests_are_400(message_id: str | None, body: dict[str, Any]) -> None:
    async with rig() as r:
        token = await r.provider.tokens.get()
        params = {"messageId": message_id or str(uuid.uuid4()), "agentId": AGENT}
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{r.sim.base_url}/v1/phones/+4915112345651/agentMessages",
                params=params,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        assert answer.status_code == 400
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert r.sim.stats.invalid == 1


def test_what_the_provider_builds_passes_the_simulator_s_check() -> None:
    from partner_gateway.channels.rcs.content import agent_message

    card = {"title": "T", "mediaUrl": "https://e.x/a.png", "suggestions": [{"type": "reply", "text": "ok"}]}
    assert check_agent_message(agent_message({"richCard": card}, 60)) is None
    suggestions = [{"type": "dial", "text": "call", "phoneNumber": "+4930123"}]
    assert check_agent_message(agent_message({"text": "t", "suggestions": suggestions}, 60)) is None


async def test_revoke_before_and_after_delivery() -> None:
    async with rig() as r:
        pending, _ = await r.send("+4915112345694")  # never delivered
        assert await r.provider.revoke(pending.message_id, pending.to) == "revoked"
        assert await r.provider.revoke(pending.message_id, pending.to) == "not_found"
        delivered, _ = await r.send("+4915112345651")
        await until(lambda: len(r.sink.reports) == 1)
        assert await r.provider.revoke(delivered.message_id, delivered.to) == "not_found"
        assert r.sim.stats.revokes == 1


async def test_a_revoked_message_gets_no_more_events() -> None:
    async with rig(event_delay_seconds=0.3) as r:
        message, _ = await r.send("+4915112345651")
        assert await r.provider.revoke(message.message_id, message.to) == "revoked"
        await asyncio.sleep(0.5)
        assert r.sink.reports == []


# -- scripted misbehaviour ------------------------------------------------------------------------------


async def test_events_out_of_order() -> None:
    async with rig() as r:
        r.sim.script.reverse_events = True
        await r.send("+4915112345612")
        await until(lambda: len(r.sink.reports) == 2)
        assert r.raw_states() == ["READ", "DELIVERED"]
        assert r.sink.reports[0].is_read


async def test_events_twice() -> None:
    async with rig() as r:
        r.sim.script = RbmSimScript(duplicate_events=True)
        await r.send("+4915112345612")
        await until(lambda: len(r.sink.reports) == 4)
        assert r.raw_states() == ["DELIVERED", "DELIVERED", "READ", "READ"]
        assert len({report.dedup_key for report in r.sink.reports}) == 2
        await until(lambda: r.sim.stats.events_posted == 4)


async def test_a_badly_signed_event_is_refused_and_retried_then_given_up() -> None:
    async with rig(webhook_attempts=3) as r:
        r.sim.script.bad_signatures = 1
        await r.send("+4915112345612")  # DELIVERED (badly signed), then READ
        await until(lambda: r.sim.stats.events_failed == 1 and r.sim.stats.events_posted == 1)
        assert r.raw_states() == ["READ"]
        assert r.sim.stats.webhook_attempts == 4


async def test_a_webhook_that_fails_for_a_while_gets_the_event_again() -> None:
    sink = RecordingSink(failing=True)
    async with rig(sink=sink, webhook_attempts=4, webhook_retry_delay_seconds=0.1) as r:
        await r.send("+4915112345651")
        await until(lambda: r.sim.stats.webhook_attempts >= 2)
        sink.failing = False
        await until(lambda: r.sim.stats.events_posted == 1)
        assert r.raw_states() == ["DELIVERED"]
        assert r.sim.stats.events_failed == 0


async def test_events_without_a_webhook_are_counted_as_failed() -> None:
    async with rig() as r:
        r.sim.webhook_url = None
        await r.send("+4915112345651")
        await until(lambda: r.sim.stats.events_failed == 1)


# -- the setup handshake -----------------------------------------------------------------------------------


async def test_the_webhook_handshake() -> None:
    async with rig() as r:
        assert await r.sim.verify_webhook() is True
        wrong = RbmSimulator(
            replace(r.sim.config, client_token="SJENCPGJESMGUFPY", webhook_url=r.webhook_url)
        )
        await wrong.start()
        try:
            assert await wrong.verify_webhook() is False
        finally:
            await wrong.stop()


async def test_stop_is_bounded_with_events_pending(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with rig(event_delay_seconds=30) as r:
        await r.send("+4915112345651")
    assert r.sim.port is not None


async def test_a_port_in_use_is_an_os_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = RbmSimulator(RbmSimConfig(public_key_pem=key_pair()[1], port=taken.getsockname()[1]))
        with pytest.raises(OSError, match="in use"):
            await busy.start()
