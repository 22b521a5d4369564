"""RbmProvider against a fake RBM (httpx.MockTransport): the requests it makes, how it classifies the
answers, and its webhook (handshake, X-Goog-Signature, event mapping). After every case no secret may
have reached a log line."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from channels.harness import (
    RecordingGuard,
    RecordingSink,
    ScriptedPeer,
    SendErrorCase,
    secrets_kept_out_of_logs,
    table,
)
from fixtures.rcs.rbm_kit import (
    ACCESS_TOKEN,
    CLIENT_TOKEN,
    MESSAGE_ID,
    RBM_ID,
    SIGNED_JWT,
    fixture_bytes,
    make_settings,
    outbound,
    push_body,
    secrets_of,
    signed,
)
from partner_gateway.channels.base import Accepted, SendError, SubmittedPart
from partner_gateway.channels.rcs.content import rbm_message_id
from partner_gateway.channels.rcs.events import (
    PushedEvent,
    WebhookRejected,
    event_reports,
    parse_time_ms,
    read_webhook,
)
from partner_gateway.channels.rcs.provider import NOT_RCS_CAPABLE_CODE, RbmProvider
from partner_gateway.channels.rcs.settings import RbmSettings
from partner_gateway.domain.inbound import InboundMessage
from partner_gateway.domain.lifecycle import CurrentState, ReportedStatus, decide
from partner_gateway.domain.statuses import Channel, DeliveryStatus, Rank, rank_of

TOKEN_URI = "https://oauth.test/token"


@dataclass
class FakeRbm(ScriptedPeer):
    """RBM behind TOKEN_URI's tokens: the RBM calls get ``answers`` in turn (the last repeats)."""

    token_requests: int = 0
    log: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URI:
            self.token_requests += 1
            token = ACCESS_TOKEN if self.token_requests == 1 else f"{ACCESS_TOKEN}-{self.token_requests}"
            return httpx.Response(200, json={"access_token": token, "expires_in": 3600})
        self.log.append(f"{request.method} {request.url.path}")
        return super().__call__(request)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


@pytest.fixture
def settings() -> RbmSettings:
    return make_settings(token_uri=TOKEN_URI)


@pytest.fixture(autouse=True)
def no_secret_logged(caplog: pytest.LogCaptureFixture, settings: RbmSettings) -> Iterator[None]:
    yield from secrets_kept_out_of_logs(caplog, [*secrets_of(settings, [f"{ACCESS_TOKEN}-2"]), SIGNED_JWT])


@pytest.fixture
def fake() -> FakeRbm:
    return FakeRbm()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def provider(settings: RbmSettings, fake: FakeRbm, sink: RecordingSink) -> AsyncIterator[RbmProvider]:
    rbm = RbmProvider(settings, transport=httpx.MockTransport(fake))
    await rbm.start(sink)
    yield rbm
    await rbm.stop()


def google(status: int, google_status: str, message: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": status, "message": message, "status": google_status}}, headers=headers
    )


# -- the request ----------------------------------------------------------------------------------------

REPLY = {"type": "reply", "text": "Yes", "postbackData": "answer=yes"}
DIAL = {"type": "dial", "text": "Call us", "phoneNumber": "+4930123456"}
OPEN_URL = {"type": "openUrl", "text": "Track", "postbackData": "track", "url": "https://example.com/t/1"}

CONTENT_ROWS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("text", {"text": "Hallo Jürgen 👋"}, {"text": "Hallo Jürgen 👋"}),
    (
        "text+suggestions",
        {
            "text": "Your parcel?",
            "suggestions": [REPLY, DIAL, OPEN_URL],
            "fallbackSms": {"text": "Your parcel?"},
        },
        {
            "text": "Your parcel?",
            "suggestions": [
                {"reply": {"text": "Yes", "postbackData": "answer=yes"}},
                {
                    "action": {
                        "text": "Call us",
                        "postbackData": "Call us",
                        "dialAction": {"phoneNumber": "+4930123456"},
                    }
                },
                {
                    "action": {
                        "text": "Track",
                        "postbackData": "track",
                        "openUrlAction": {"url": "https://example.com/t/1"},
                    }
                },
            ],
        },
    ),
    (
        "rich card",
        {
            "richCard": {
                "title": "Order shipped",
                "description": "Arrives Friday",
                "mediaUrl": "https://example.com/box.png",
                "mediaHeight": "TALL",
                "suggestions": [REPLY],
            }
        },
        {
            "richCard": {
                "standaloneCard": {
                    "cardOrientation": "VERTICAL",
                    "cardContent": {
                        "title": "Order shipped",
                        "description": "Arrives Friday",
                        "media": {
                            "height": "TALL",
                            "contentInfo": {"fileUrl": "https://example.com/box.png", "forceRefresh": False},
                        },
                        "suggestions": [{"reply": {"text": "Yes", "postbackData": "answer=yes"}}],
                    },
                }
            }
        },
    ),
    (
        "rich card, text only, default height",
        {"richCard": {"description": "Nur Text", "mediaUrl": "https://example.com/a.jpg"}},
        {
            "richCard": {
                "standaloneCard": {
                    "cardOrientation": "VERTICAL",
                    "cardContent": {
                        "description": "Nur Text",
                        "media": {
                            "height": "MEDIUM",
                            "contentInfo": {"fileUrl": "https://example.com/a.jpg", "forceRefresh": False},
                        },
                    },
                }
            }
        },
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"), [row[1:] for row in CONTENT_ROWS], ids=[row[0] for row in CONTENT_ROWS]
)
async def test_the_agent_message_request(
    provider: RbmProvider,
    fake: FakeRbm,
    settings: RbmSettings,
    content: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    guard = RecordingGuard(fake.log)
    accepted = await provider.send(outbound(content, validity_s=600), guard)
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.url.path == "/v1/phones/+4915112345678/agentMessages"
    assert dict(request.url.params) == {"messageId": RBM_ID, "agentId": settings.agent_id}
    assert request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    body = fake.body()
    assert body["contentMessage"] == expected
    assert body["ttl"] in ("599s", "600s")
    assert fake.log == [f"before_write:{MESSAGE_ID}", "POST /v1/phones/+4915112345678/agentMessages"]
    assert accepted == Accepted(
        "rcs", (SubmittedPart(1, 1, RBM_ID, RBM_ID),), "Accepted by RCS Business Messaging", "accepted"
    )


def test_the_rbm_message_id_is_a_stable_rfc4122_uuid() -> None:
    value = uuid.UUID(rbm_message_id(MESSAGE_ID))
    assert (str(value), value.version, value.variant) == (RBM_ID, 5, uuid.RFC_4122)
    assert rbm_message_id("msg_01KBX9Z3Q7T0Z5K9R3B2M8N4P7") != RBM_ID


async def test_a_token_is_reused_across_sends(provider: RbmProvider, fake: FakeRbm) -> None:
    for _ in range(3):
        await provider.send(outbound({"text": "hi"}), RecordingGuard())
    assert fake.token_requests == 1


@pytest.mark.parametrize(
    "content",
    [
        {},
        {"text": ""},
        {"text": "x", "suggestions": [{"type": "share", "text": "x"}]},
        {"richCard": {"suggestions": []}},
    ],
    ids=["empty", "blank-text", "unknown-suggestion", "empty-card"],
)
async def test_content_rbm_cannot_carry_is_permanent_and_nothing_is_sent(
    provider: RbmProvider, fake: FakeRbm, content: dict[str, Any]
) -> None:
    guard = RecordingGuard()
    with pytest.raises(SendError) as raised:
        await provider.send(outbound(content), guard)
    assert (raised.value.kind, raised.value.code) == ("permanent", "gw:invalid-content")
    assert fake.requests == []
    assert guard.log == []


# -- answers ---------------------------------------------------------------------------------------------

NOT_FOUND = google(404, "NOT_FOUND", "Requested entity was not found.")
QUOTA = google(429, "RESOURCE_EXHAUSTED", "Quota", **{"Retry-After": "7"})
FRACTIONAL = google(429, "RESOURCE_EXHAUSTED", "Quota", **{"Retry-After": "1.5"})
SEND_ERRORS = [
    SendErrorCase("404 not RCS-capable", [NOT_FOUND], "permanent", NOT_RCS_CAPABLE_CODE),
    SendErrorCase(
        "400 invalid argument",
        [google(400, "INVALID_ARGUMENT", "Bad suggestion\n text")],
        "permanent",
        "rbm:400",
    ),
    SendErrorCase("413 too large", [httpx.Response(413)], "permanent", "rbm:413"),
    SendErrorCase("429 with Retry-After", [QUOTA], "throttled", "rbm:429", 7.0),
    SendErrorCase("429 without Retry-After", [google(429, "RESOURCE_EXHAUSTED")], "throttled", "rbm:429"),
    # Not delay-seconds (RFC 9110 §10.2.3), so not believed: the dispatcher's back-off applies.
    SendErrorCase("429 with a fractional Retry-After", [FRACTIONAL], "throttled", "rbm:429"),
    SendErrorCase("500", [google(500, "INTERNAL")], "retry", "rbm:500"),
    SendErrorCase("503 not json", [httpx.Response(503, text="<html>")], "retry", "rbm:503"),
    SendErrorCase("408", [httpx.Response(408)], "retry", "rbm:408"),
    SendErrorCase("connect error", [httpx.ConnectError("refused")], "retry", "rbm:network"),
    SendErrorCase("timeout after writing", [httpx.ReadTimeout("no answer")], "retry", "rbm:network"),
    SendErrorCase("401 twice", [google(401, "UNAUTHENTICATED")], "retry", "rbm:401", 300.0),
    SendErrorCase("403 twice", [google(403, "PERMISSION_DENIED")], "retry", "rbm:403", 300.0),
]


@table(SEND_ERRORS)
async def test_failures_are_classified_by_what_to_do_next(
    provider: RbmProvider, fake: FakeRbm, case: SendErrorCase
) -> None:
    fake.answers = list(case.answers)
    with pytest.raises(SendError) as raised:
        await provider.send(outbound({"text": "hi"}), RecordingGuard())
    case.check(raised.value, "rcs")


async def test_google_s_message_is_kept_for_a_400(provider: RbmProvider, fake: FakeRbm) -> None:
    fake.answers = [google(400, "INVALID_ARGUMENT", "Suggestion text too long\n")]
    with pytest.raises(SendError) as raised:
        await provider.send(outbound({"text": "hi"}), RecordingGuard())
    assert "Suggestion text too long (INVALID_ARGUMENT)" in raised.value.description


async def test_409_already_exists_is_an_earlier_acceptance(provider: RbmProvider, fake: FakeRbm) -> None:
    fake.answers = [google(409, "ALREADY_EXISTS", "Requested entity already exists")]
    accepted = await provider.send(outbound({"text": "hi"}), RecordingGuard())
    assert accepted.parts == (SubmittedPart(1, 1, RBM_ID, RBM_ID),)
    assert accepted.raw_state == "already_exists"


@pytest.mark.parametrize("refusal", [401, 403])
async def test_a_refused_token_is_replaced_once(provider: RbmProvider, fake: FakeRbm, refusal: int) -> None:
    fake.answers = [google(refusal, "UNAUTHENTICATED"), httpx.Response(200, json={})]
    await provider.send(outbound({"text": "hi"}), RecordingGuard())
    assert fake.token_requests == 2
    assert [r.headers["Authorization"] for r in fake.requests] == [
        f"Bearer {ACCESS_TOKEN}",
        f"Bearer {ACCESS_TOKEN}-2",
    ]
    assert fake.body(0) == fake.body(1)
    assert {r.url.params["messageId"] for r in fake.requests} == {RBM_ID}


async def test_no_token_means_retry(settings: RbmSettings, sink: RecordingSink) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_grant"})

    rbm = RbmProvider(settings, transport=httpx.MockTransport(refuse))
    await rbm.start(sink)
    guard = RecordingGuard()
    with pytest.raises(SendError) as raised:
        await rbm.send(outbound({"text": "hi"}), guard)
    await rbm.stop()
    assert (raised.value.kind, raised.value.code, raised.value.retry_after) == ("retry", "rbm:token", 300.0)
    assert guard.log == []  # nothing was written


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [(httpx.Response(200, json={}), "revoked"), (google(404, "NOT_FOUND"), "not_found")],
)
async def test_revoke(
    provider: RbmProvider, fake: FakeRbm, settings: RbmSettings, answer: httpx.Response, outcome: str
) -> None:
    fake.answers = [answer]
    assert await provider.revoke(MESSAGE_ID, "+4915112345678") == outcome
    (request,) = fake.requests
    assert request.method == "DELETE"
    assert request.url.path == f"/v1/phones/+4915112345678/agentMessages/{RBM_ID}"
    assert dict(request.url.params) == {"agentId": settings.agent_id}


async def test_a_failed_revoke_raises(provider: RbmProvider, fake: FakeRbm) -> None:
    fake.answers = [google(503, "UNAVAILABLE")]
    with pytest.raises(SendError, match="refused") as raised:
        await provider.revoke(MESSAGE_ID, "+4915112345678")
    assert raised.value.kind == "retry"


# -- the webhook ------------------------------------------------------------------------------------------


def test_one_post_route_named_rcs(provider: RbmProvider) -> None:
    (route,) = provider.webhook_routes()
    assert (route.method, route.path) == ("POST", "rcs")


@pytest.mark.parametrize(
    ("token", "status", "body"), [(CLIENT_TOKEN, 200, b"1234567890"), ("SJENCPGJESMGUFPY", 403, None)]
)
async def test_the_setup_handshake(
    provider: RbmProvider, sink: RecordingSink, token: str, status: int, body: bytes | None
) -> None:
    request = json.dumps({"clientToken": token, "secret": "1234567890"}).encode()
    answer = await provider.handle_webhook(request, {"Content-Type": "application/json"}, {})
    assert answer[0] == status
    if body is not None:
        assert answer[1:] == (body, "text/plain; charset=utf-8")
    assert sink.reports == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Goog-Signature": ""},
        signed(b"other bytes"),
        signed(fixture_bytes("delivered.json"), token="not-our-token"),
        {"x-goog-signature": "AAAA"},
    ],
    ids=["missing", "empty", "other-data", "other-key", "garbage"],
)
async def test_a_bad_signature_is_401_and_changes_nothing(
    provider: RbmProvider, sink: RecordingSink, headers: dict[str, str]
) -> None:
    status, _, content_type = await provider.handle_webhook(
        push_body(fixture_bytes("delivered.json")), headers, {}
    )
    assert (status, content_type) == (401, "application/problem+json")
    assert sink.reports == []


async def test_the_signature_header_is_case_insensitive(provider: RbmProvider, sink: RecordingSink) -> None:
    data = fixture_bytes("delivered.json")
    headers = {key.lower(): value for key, value in signed(data).items()}
    assert (await provider.handle_webhook(push_body(data), headers, {}))[0] == 200
    assert len(sink.reports) == 1


MALFORMED_ROWS = [
    ("not json", b"{nope", signed(b"x")),
    ("json array", b"[1]", signed(b"x")),
    ("no message", b'{"subscription": "s"}', signed(b"x")),
    ("no data", b'{"message": {"messageId": "1"}}', signed(b"x")),
    ("data not base64", b'{"message": {"data": "%%%"}}', signed(b"x")),
    ("data not json", push_body(b"\xff\xfe not json"), signed(b"\xff\xfe not json")),
    ("data a json list", push_body(b"[]"), signed(b"[]")),
    ("handshake secret not a string", b'{"clientToken": "t", "secret": 5}', {}),
]


@pytest.mark.parametrize(
    ("body", "headers"), [row[1:] for row in MALFORMED_ROWS], ids=[row[0] for row in MALFORMED_ROWS]
)
async def test_malformed_posts_are_400(
    provider: RbmProvider, sink: RecordingSink, body: bytes, headers: dict[str, str]
) -> None:
    status, answer, _ = await provider.handle_webhook(body, headers, {})
    assert status == 400
    assert json.loads(answer)["status"] == 400
    assert sink.reports == []


EVENT_ROWS: list[tuple[str, DeliveryStatus | None, bool, bool, str | None]] = [
    ("delivered.json", DeliveryStatus.DELIVERED, False, True, None),
    ("read.json", DeliveryStatus.DELIVERED, True, True, None),
    ("ttl_expiration_revoked.json", DeliveryStatus.EXPIRED, False, True, "rbm:TTL_EXPIRATION_REVOKED"),
    ("ttl_expiration_revoke_failed.json", DeliveryStatus.RECEIVED, False, False, None),
    ("unspecified.json", DeliveryStatus.UNKNOWN, False, False, None),
    ("future_event_type.json", None, False, False, None),
]


@pytest.mark.parametrize(
    ("fallback", "ttl"),
    [
        ({"text": "sms", "afterSeconds": 30}, {"29s", "30s"}),  # the partner's fallback time
        ({"text": "sms", "afterSeconds": 7200}, {"599s", "600s"}),  # never past the validity
        ({"text": "sms", "afterSeconds": None}, {"599s", "600s"}),
        ({"text": "sms"}, {"599s", "600s"}),
    ],
)
async def test_the_ttl_is_the_fallback_time_when_the_send_asks_for_one(
    provider: RbmProvider, fake: FakeRbm, fallback: dict[str, Any], ttl: set[str]
) -> None:
    await provider.send(outbound({"text": "hi", "fallbackSms": fallback}, validity_s=600), RecordingGuard())
    assert fake.body()["ttl"] in ttl


@pytest.mark.parametrize(
    ("name", "status", "is_read", "final", "error_code"), EVENT_ROWS, ids=[r[0] for r in EVENT_ROWS]
)
async def test_event_mapping(
    provider: RbmProvider,
    sink: RecordingSink,
    name: str,
    status: DeliveryStatus | None,
    is_read: bool,
    final: bool,
    error_code: str | None,
) -> None:
    data = fixture_bytes(name)
    event = json.loads(data)
    assert await provider.handle_webhook(push_body(data), signed(data), {}) == (
        200,
        b"{}",
        "application/json",
    )
    (report,) = sink.reports
    assert report.provider == "rcs"
    assert (report.status, report.is_read, report.is_final, report.error_code) == (
        status,
        is_read,
        final,
        error_code,
    )
    assert report.raw_state == event["eventType"]
    assert report.provider_key == RBM_ID
    assert report.dedup_key == f"rcs:{RBM_ID}:{event['eventType']}:{event['eventId']}"
    assert report.occurred_at == parse_time_ms(event["sendTime"])
    assert report.details["eventId"] == event["eventId"]
    # Only a revocation is the channel giving up on the destination: a fallback's cue.
    assert report.channel_unavailable == (event["eventType"] == "TTL_EXPIRATION_REVOKED")


async def test_the_revoke_failed_event_says_delivery_may_follow(
    provider: RbmProvider, sink: RecordingSink
) -> None:
    data = fixture_bytes("ttl_expiration_revoke_failed.json")
    await provider.handle_webhook(push_body(data), signed(data), {})
    assert "may still follow" in sink.reports[0].description


@pytest.mark.parametrize(("agent", "recorded"), [("another_agent@rbm.goog", 0), (None, 1)])
async def test_only_our_agents_events_are_recorded(
    provider: RbmProvider, sink: RecordingSink, agent: str | None, recorded: int
) -> None:
    """Another agent's event (one subscription may serve several) is acknowledged and ignored,
    never parked; an event naming no agent is kept."""
    event = json.loads(fixture_bytes("delivered.json"))
    if agent is None:
        del event["agentId"]
    else:
        event["agentId"] = agent
    data = json.dumps(event).encode()
    assert (await provider.handle_webhook(push_body(data), signed(data), {}))[0] == 200
    assert len(sink.reports) == recorded


@pytest.mark.parametrize("name", ["is_typing.json"])
async def test_events_naming_no_message_are_acknowledged_and_ignored(
    provider: RbmProvider, sink: RecordingSink, name: str
) -> None:
    data = fixture_bytes(name)
    assert (await provider.handle_webhook(push_body(data), signed(data), {}))[0] == 200
    assert sink.reports == []
    assert sink.inbound == []


async def test_a_user_message_is_stored_as_inbound_for_the_agent(
    provider: RbmProvider, sink: RecordingSink
) -> None:
    data = fixture_bytes("user_message.json")
    assert (await provider.handle_webhook(push_body(data), signed(data), {}))[0] == 200
    assert sink.reports == []
    [message] = sink.inbound
    assert isinstance(message, InboundMessage)
    assert (message.channel, message.sender, message.recipient, message.kind) == (
        Channel.RCS, "+4915112345678", "grüne-bäckerei_agent@rbm.goog", "text",
    )  # fmt: skip
    assert message.text == "Grüße aus Köln — ça va? 👋 数字"
    assert message.provider_message_id == "MxUsErMeSsAgE0123456789"
    assert message.dedup_key == "rcs:MxUsErMeSsAgE0123456789"
    assert message.received_at == 1_795_774_620_000  # 2026-11-27T10:17:00Z


async def test_a_user_message_not_stored_is_answered_500_for_rbm_to_deliver_again(
    provider: RbmProvider, sink: RecordingSink
) -> None:
    sink.failures = 1
    data = fixture_bytes("user_message.json")
    assert (await provider.handle_webhook(push_body(data), signed(data), {}))[0] == 500
    assert (await provider.handle_webhook(push_body(data), signed(data), {}))[0] == 200
    assert len(sink.inbound) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T10:15:32Z", 1795774532000),
        ("2026-11-27T10:15:32.480123456Z", 1795774532480),
        ("2026-11-27T10:15:32.4Z", 1795774532400),
        ("2026-11-27T11:15:32.480+01:00", 1795774532480),
    ],
)
def test_send_times(text: str, expected: int) -> None:
    assert parse_time_ms(text) == expected


def fold(reports: list[Any]) -> tuple[DeliveryStatus, bool]:
    """The message's status after ``reports`` under the lifecycle rule (SPEC §4), read flag included."""
    state, read, seen = CurrentState(DeliveryStatus.SENT, Rank.SENT), False, set()
    for report in reports:
        if report.status is None or report.dedup_key in seen:
            continue
        seen.add(report.dedup_key)
        transition = decide(state, ReportedStatus(report.status, report.description, is_read=report.is_read))
        read = read or transition.sets_read
        if transition.changes_status:
            state = CurrentState(report.status, rank_of(report.status))
    return state.status, read


@pytest.mark.parametrize(
    ("sequence", "status", "read"),
    [
        (["delivered.json", "read.json"], DeliveryStatus.DELIVERED, True),
        (["read.json", "delivered.json"], DeliveryStatus.DELIVERED, True),
        (["delivered.json", "delivered.json", "read.json", "read.json"], DeliveryStatus.DELIVERED, True),
        (["ttl_expiration_revoked.json", "delivered.json"], DeliveryStatus.DELIVERED, False),
        (["delivered.json", "ttl_expiration_revoked.json"], DeliveryStatus.DELIVERED, False),
        (["ttl_expiration_revoke_failed.json", "delivered.json"], DeliveryStatus.DELIVERED, False),
        (["ttl_expiration_revoke_failed.json"], DeliveryStatus.RECEIVED, False),
        (["unspecified.json", "ttl_expiration_revoked.json"], DeliveryStatus.EXPIRED, False),
    ],
    ids=[
        "in-order",
        "read-first",
        "twice-each",
        "revoke-race",
        "late-revoke",
        "revoke-failed",
        "only-revoke-failed",
        "unknown-then-expired",
    ],
)
async def test_out_of_order_and_duplicate_events(
    provider: RbmProvider, sink: RecordingSink, sequence: list[str], status: DeliveryStatus, read: bool
) -> None:
    for name in sequence:
        data = fixture_bytes(name)
        assert (await provider.handle_webhook(push_body(data), signed(data), {}))[0] == 200
    assert len(sink.reports) == len(sequence)
    assert len({r.dedup_key for r in sink.reports}) == len(set(sequence))
    assert fold(sink.reports) == (status, read)


async def test_a_report_that_cannot_be_recorded_is_not_acknowledged(
    settings: RbmSettings, fake: FakeRbm
) -> None:
    rbm = RbmProvider(settings, transport=httpx.MockTransport(fake))
    data = fixture_bytes("delivered.json")
    assert (await rbm.handle_webhook(push_body(data), signed(data), {}))[0] == 503  # not started
    await rbm.start(RecordingSink(failing=True))
    assert (await rbm.handle_webhook(push_body(data), signed(data), {}))[0] == 500
    await rbm.stop()


# -- properties of the parsers ----------------------------------------------------------------------------

_PROPERTIES = hypothesis_settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_PROPERTIES
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(push_body, st.binary(max_size=200)),
        st.builds(lambda t, s: json.dumps({"clientToken": t, "secret": s}).encode(), st.text(), st.text()),
    ),
    signature=st.one_of(st.none(), st.text(max_size=100)),
)
def test_any_post_is_answered_or_refused_never_crashes(body: bytes, signature: str | None) -> None:
    headers = {} if signature is None else {"X-Goog-Signature": signature}
    status = 200
    try:
        read_webhook(body, headers, CLIENT_TOKEN)
    except WebhookRejected as refused:
        status = refused.status
    assert status in (200, 400, 401, 403)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@_PROPERTIES
@given(event=st.dictionaries(st.text(max_size=12), _JSON_VALUES, max_size=6), ascii_only=st.booleans())
def test_any_signed_event_is_read_back_and_mapped_without_error(
    event: dict[str, Any], ascii_only: bool
) -> None:
    data = json.dumps(event, ensure_ascii=ascii_only).encode()
    pushed = read_webhook(push_body(data), signed(data), CLIENT_TOKEN)
    assert isinstance(pushed, PushedEvent)
    assert pushed.event == event
    for report in event_reports(pushed):
        assert report.dedup_key.startswith("rcs:")


@_PROPERTIES
@given(st.text(max_size=40))
def test_any_send_time_gives_a_time(text: str) -> None:
    assert isinstance(parse_time_ms(text), int)
