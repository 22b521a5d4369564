"""The WhatsApp provider against Meta's formats: sends through an injected httpx.MockTransport, webhooks
from recorded payloads (tests/fixtures/whatsapp, signed here over their exact bytes), reports into a
recording sink. After every case no secret may appear in a log record."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from channels.harness import (
    RecordingGuard,
    RecordingSink,
    SendErrorCase,
    secrets_kept_out_of_logs,
    table,
)
from partner_gateway.channels.base import (
    Accepted,
    OutboundMessage,
    SendError,
    SendErrorKind,
    StatusReport,
    SubmittedPart,
)
from partner_gateway.channels.http_errors import HttpRefusal
from partner_gateway.channels.whatsapp.errors import BY_HTTP_STATUS
from partner_gateway.channels.whatsapp.provider import WhatsAppProvider, build_payload
from partner_gateway.channels.whatsapp.settings import WhatsAppSettings
from partner_gateway.channels.whatsapp.webhooks import parse_statuses, signature_matches
from partner_gateway.domain.statuses import Channel, DeliveryStatus

FIXTURES = Path(__file__).parents[2] / "fixtures" / "whatsapp"
TOKEN = "EAAGtest-access-token-7Hq2Lx9"
APP_SECRET = "app-secret-3f9a1c77be"
VERIFY_TOKEN = "verify-token-Zq81mW"
SECRETS = (TOKEN, APP_SECRET, VERIFY_TOKEN)
SETTINGS = WhatsAppSettings(
    base_url="https://graph.test/",
    phone_number_id="106540352242922",
    access_token=SecretStr(TOKEN),
    app_secret=SecretStr(APP_SECRET),
    verify_token=SecretStr(VERIFY_TOKEN),
    request_timeout_seconds=2,
)
URL = "https://graph.test/v21.0/106540352242922/messages"
MESSAGE_ID = "msg_01JDX3Q7T0Z5K9R3B2M8N4P6W1"
WRITE = f"before_write:{MESSAGE_ID}"  # what the guard notes before the request goes out
WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def no_secret_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield from secrets_kept_out_of_logs(caplog, SECRETS)


def message(content: dict[str, Any], to: str = "+4915112345678") -> OutboundMessage:
    return OutboundMessage(MESSAGE_ID, "cmp_1", Channel.WHATSAPP, to, None, content, 0, 0)


def graph_ok(wamid: str = WAMID, **extra: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "messaging_product": "whatsapp",
            "contacts": [{"input": "4915112345678", "wa_id": "4915112345678"}],
            "messages": [{"id": wamid, **extra}],
        },
    )


def graph_error(
    status: int, code: int, message: str = "(#0) error", subcode: int | None = None
) -> httpx.Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbC"}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["error_data"] = {"messaging_product": "whatsapp", "details": message}
    return httpx.Response(status, json={"error": error})


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


async def send(
    handler: Handler, content: dict[str, Any], sink: RecordingSink | None = None
) -> tuple[Accepted | SendError, RecordingGuard]:
    provider = WhatsAppProvider(SETTINGS, transport=httpx.MockTransport(handler))
    await provider.start(sink or RecordingSink())
    guard = RecordingGuard()
    try:
        return await provider.send(message(content), guard), guard
    except SendError as error:
        return error, guard
    finally:
        await provider.stop()


# --- sending -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "body"),
    [
        pytest.param(
            {"to": "+4915112345678", "text": "Hello Ирина 👋", "reference": "order-1"},
            {"type": "text", "text": {"body": "Hello Ирина 👋"}},
            id="text",
        ),
        pytest.param(
            {"template": {"name": "order_update", "language": "en_US", "parameters": ["Ann", "#1234"]}},
            {
                "type": "template",
                "template": {
                    "name": "order_update",
                    "language": {"code": "en_US"},
                    "components": [
                        {
                            "type": "body",
                            "parameters": [
                                {"type": "text", "text": "Ann"},
                                {"type": "text", "text": "#1234"},
                            ],
                        }
                    ],
                },
            },
            id="template",
        ),
        pytest.param(
            {"text": None, "template": {"name": "hello_world", "language": "en_US", "parameters": []}},
            {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}},
            id="template-without-parameters",
        ),
    ],
)
async def test_send_posts_the_graph_request(content: dict[str, Any], body: dict[str, Any]) -> None:
    seen: list[httpx.Request] = []
    guard_at_request: list[list[str]] = []
    guard = RecordingGuard()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        guard_at_request.append(list(guard.log))
        return graph_ok()

    provider = WhatsAppProvider(SETTINGS, transport=httpx.MockTransport(handler))
    await provider.start(RecordingSink())
    try:
        accepted = await provider.send(message(content), guard)
    finally:
        await provider.stop()

    assert accepted == Accepted(
        "whatsapp", (SubmittedPart(1, 1, WAMID, WAMID),), "Accepted by WhatsApp", "accepted"
    )
    [request] = seen
    assert (request.method, str(request.url)) == ("POST", URL)
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "4915112345678",
        **body,
        "biz_opaque_callback_data": MESSAGE_ID,
    }
    assert guard_at_request == [[WRITE]]  # recorded before the request went out


async def test_a_template_held_for_quality_assessment_is_accepted_with_that_state() -> None:
    outcome, _ = await send(
        lambda _: graph_ok(message_status="held_for_quality_assessment"),
        {"template": {"name": "promo", "language": "de"}},
    )
    assert isinstance(outcome, Accepted)
    assert outcome.raw_state == "held_for_quality_assessment"
    assert outcome.description == "Accepted by WhatsApp (held_for_quality_assessment)"


@pytest.mark.parametrize(
    "content",
    [
        {},
        {"text": ""},
        {"text": "a", "template": {"name": "x", "language": "en"}},
        {"template": {"name": "x"}},
    ],
)
async def test_content_that_cannot_be_sent_is_refused_before_any_write(content: dict[str, Any]) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return graph_ok()

    outcome, guard = await send(handler, content)
    assert isinstance(outcome, SendError)
    assert (outcome.kind, outcome.code) == ("permanent", "gw:invalid-content")
    assert guard.log == []
    assert requests == []


def graph_case(
    status: int, code: int, kind: SendErrorKind, retry_after: float | None, words: str
) -> SendErrorCase:
    answer = graph_error(status, code, f"(#{code}) Something")
    return SendErrorCase(f"{status}-{code}", [answer], kind, f"whatsapp:{code}", retry_after, words)


GRAPH_ERRORS = [
    graph_case(400, 131026, "permanent", None, "undeliverable"),
    graph_case(400, 131047, "permanent", None, "24 hours"),
    graph_case(400, 131049, "permanent", None, "healthy ecosystem"),
    graph_case(400, 100, "permanent", None, "parameter"),
    graph_case(400, 131008, "permanent", None, "missing"),
    graph_case(400, 131009, "permanent", None, "not valid"),
    graph_case(400, 132001, "permanent", None, "template"),
    graph_case(400, 4, "throttled", 60.0, "rate limit"),
    graph_case(400, 80007, "throttled", 60.0, "rate limit"),
    graph_case(429, 130429, "throttled", 1.0, "throughput"),
    graph_case(400, 131048, "throttled", 60.0, "spam"),
    graph_case(400, 131056, "throttled", 6.0, "same recipient"),
    graph_case(500, 131000, "retry", None, "went wrong"),
    graph_case(500, 1, "retry", None, "unknown"),
    graph_case(503, 2, "retry", None, "unavailable"),
    graph_case(401, 190, "retry", 300.0, "access token"),
    graph_case(400, 999999, "permanent", None, "refused"),
    graph_case(503, 999999, "retry", None, "unavailable"),
]


@table(GRAPH_ERRORS)
async def test_graph_errors_are_classified(case: SendErrorCase) -> None:
    outcome, guard = await send(case.peer(), {"text": "hi"})
    assert isinstance(outcome, SendError)
    case.check(outcome, "whatsapp")
    assert str(case.code).replace("whatsapp:", "WhatsApp error ") in outcome.description
    assert guard.log == [WRITE]


def test_the_fallback_by_http_status_keeps_the_shared_kinds() -> None:
    assert set(BY_HTTP_STATUS) == set(HttpRefusal)
    assert all(rule.kind == refusal.kind for refusal, rule in BY_HTTP_STATUS.items())


THROTTLED = {"error": {"code": 130429}}
UNUSABLE_ANSWERS = [
    SendErrorCase(
        "502-html", [httpx.Response(502, text="<html>Bad Gateway</html>")], "retry", "whatsapp:http-502"
    ),
    SendErrorCase("401-empty", [httpx.Response(401, text="")], "retry", "whatsapp:http-401", 300.0),
    SendErrorCase(
        "429-retry-after",
        [httpx.Response(429, headers={"Retry-After": "7"}, json=THROTTLED)],
        "throttled",
        "whatsapp:130429",
        7.0,
    ),
    SendErrorCase(  # not delay-seconds (RFC 9110 §10.2.3): the rule's own 1 s
        "429-fractional-retry-after",
        [httpx.Response(429, headers={"Retry-After": "1.5"}, json=THROTTLED)],
        "throttled",
        "whatsapp:130429",
        1.0,
    ),
    SendErrorCase(
        "400-nonsense", [httpx.Response(400, json={"error": "nonsense"})], "permanent", "whatsapp:http-400"
    ),
]


@table(UNUSABLE_ANSWERS)
async def test_answers_without_a_usable_graph_error(case: SendErrorCase) -> None:
    outcome, _ = await send(case.peer(), {"text": "hi"})
    assert isinstance(outcome, SendError)
    case.check(outcome, "whatsapp")


async def test_a_refused_token_is_logged_for_the_operator_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo = f"Malformed access token {TOKEN}"  # the Graph API does echo a malformed token
    outcome, _ = await send(lambda _: graph_error(401, 190, echo), {"text": "hi"})
    assert isinstance(outcome, SendError)
    assert TOKEN not in outcome.description
    assert "[redacted]" in outcome.description
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "access token" in line.getMessage()


NETWORK_FAILURES = [
    SendErrorCase(type(error).__name__, [error], kind, None)
    for kind, error in [
        ("retry", httpx.ConnectError("connection refused")),
        ("retry", httpx.ConnectTimeout("connect timed out")),
        ("retry", httpx.PoolTimeout("no connection free")),
        ("ambiguous", httpx.ReadTimeout("read timed out")),
        ("ambiguous", httpx.WriteTimeout("write timed out")),
        ("ambiguous", httpx.RemoteProtocolError("Server disconnected without sending a response.")),
        ("ambiguous", httpx.ReadError("connection reset")),
    ]
]


@table(NETWORK_FAILURES)
async def test_network_failures(case: SendErrorCase) -> None:
    outcome, guard = await send(case.peer(), {"text": "hi"})
    assert isinstance(outcome, SendError)
    case.check(outcome, "whatsapp")
    assert guard.log == [WRITE]


@pytest.mark.parametrize(
    "body", [{"messages": []}, {"messaging_product": "whatsapp"}, {"messages": [{"id": ""}]}]
)
async def test_a_success_without_a_message_id_is_ambiguous(body: dict[str, Any]) -> None:
    outcome, _ = await send(lambda _: httpx.Response(200, json=body), {"text": "hi"})
    assert isinstance(outcome, SendError)
    assert outcome.kind == "ambiguous"


async def test_send_before_start_is_a_retry() -> None:
    provider = WhatsAppProvider(SETTINGS, transport=httpx.MockTransport(lambda _: graph_ok()))
    with pytest.raises(SendError) as raised:
        await provider.send(message({"text": "hi"}), RecordingGuard())
    assert raised.value.kind == "retry"


def test_payload_digits_only_destination() -> None:
    assert build_payload(message({"text": "x"}, to="+1 (555) 010-0199"))["to"] == "15550100199"


def test_settings_keep_secrets_out_of_their_repr_and_refuse_empty_ones() -> None:
    assert not [secret for secret in SECRETS if secret in repr(SETTINGS) + str(SETTINGS.model_dump())]
    assert SETTINGS.base_url == "https://graph.test"
    valid: dict[str, Any] = {
        "phone_number_id": "1",
        "access_token": "t",
        "app_secret": "a",
        "verify_token": "v",
    }
    for wrong in (
        {"access_token": ""},
        {"api_version": "21"},
        {"base_url": "graph.test"},
        {"phone_number_id": "1/2"},
    ):
        with pytest.raises(ValidationError):
            WhatsAppSettings.model_validate(valid | wrong)


# --- webhooks ------------------------------------------------------------------------------------


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {"x-hub-signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


@pytest.fixture
async def provider(sink: RecordingSink) -> AsyncIterator[WhatsAppProvider]:
    provider = WhatsAppProvider(SETTINGS, transport=httpx.MockTransport(lambda _: graph_ok()))
    await provider.start(sink)
    yield provider
    await provider.stop()


def routes(provider: WhatsAppProvider) -> dict[str, Any]:
    found = {route.method: route for route in provider.webhook_routes()}
    assert {route.path for route in found.values()} == {"whatsapp"}
    return {method: route.handler for method, route in found.items()}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"},
            (200, b"1158201444"),
        ),
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"}, (403, None)),
        (
            {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN + "x", "hub.challenge": "1"},
            (403, None),
        ),
        ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}, (403, None)),
        ({"hub.challenge": "1"}, (403, None)),
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, (400, None)),
    ],
)
async def test_verification_handshake(
    provider: WhatsAppProvider, query: dict[str, str], expected: tuple[int, bytes | None]
) -> None:
    """The challenge echoed as plain text; a refusal is problem details, as every webhook error is."""
    status, body, content_type = await routes(provider)["GET"](b"", {}, query)
    if expected[1] is not None:
        assert (status, body, content_type) == (*expected, "text/plain")
    else:
        assert content_type == "application/problem+json"
        problem = json.loads(body)
        assert (status, problem["status"]) == (expected[0], expected[0])
        assert problem["type"].startswith("https://partner-gateway.dev/problems/webhook-")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"x-hub-signature-256": ""}, id="empty"),
        pytest.param(signed(fixture("delivered.json"), "another-secret"), id="wrong-key"),
        pytest.param(signed(fixture("sent.json")), id="other-body"),
        pytest.param({"x-hub-signature-256": "sha1=" + "0" * 40}, id="sha1"),
        pytest.param({"x-hub-signature-256": "sha256=zz"}, id="not-hex"),
        pytest.param({"x-hub-signature-256": "sha256=ÿ"}, id="not-ascii"),
    ],
)
async def test_a_webhook_without_a_valid_signature_changes_nothing(
    provider: WhatsAppProvider, sink: RecordingSink, headers: dict[str, str]
) -> None:
    status, body, _ = await routes(provider)["POST"](fixture("delivered.json"), headers, {})
    assert status == 401
    assert json.loads(body) == {
        "type": "https://partner-gateway.dev/problems/webhook-bad-signature",
        "title": "Bad signature",
        "status": 401,
        "detail": "X-Hub-Signature-256 is missing or does not match",
    }
    assert sink.reports == []


async def test_a_signed_webhook_is_recorded(provider: WhatsAppProvider, sink: RecordingSink) -> None:
    raw = fixture("delivered.json")
    upper = {"x-hub-signature-256": signed(raw)["x-hub-signature-256"].upper().replace("SHA256=", "sha256=")}
    for headers in (signed(raw), upper):
        assert await routes(provider)["POST"](raw, headers, {}) == (
            200,
            b'{"status": "ok"}',
            "application/json",
        )
    assert [report.status for report in sink.reports] == [DeliveryStatus.DELIVERED] * 2


@pytest.mark.parametrize(("number", "recorded"), [("106540352242923", 0), (None, 1), (106540352242922, 1)])
async def test_only_our_numbers_statuses_are_recorded(
    provider: WhatsAppProvider, sink: RecordingSink, number: str | int | None, recorded: int
) -> None:
    """Another number's statuses (Meta sends every number of the business account to the app)
    are acknowledged and ignored, never parked; a change naming no number is kept."""
    document = json.loads(fixture("delivered.json"))
    metadata = document["entry"][0]["changes"][0]["value"]["metadata"]
    if number is None:
        del metadata["phone_number_id"]
    else:
        metadata["phone_number_id"] = number
    raw = json.dumps(document).encode()
    assert (await routes(provider)["POST"](raw, signed(raw), {}))[0] == 200
    assert len(sink.reports) == recorded


@pytest.mark.parametrize("name", ["non_ascii_escaped.json", "non_ascii_utf8.json"])
async def test_non_ascii_bodies_are_verified_over_their_raw_bytes(
    provider: WhatsAppProvider, sink: RecordingSink, name: str
) -> None:
    raw = fixture(name)
    assert not raw.isascii() or b"\\u" in raw
    for reserialised in (
        json.dumps(json.loads(raw)).encode(),
        json.dumps(json.loads(raw), ensure_ascii=False).encode(),
    ):
        assert reserialised != raw
        assert (await routes(provider)["POST"](raw, signed(reserialised), {}))[0] == 401
    assert sink.reports == []
    assert (await routes(provider)["POST"](raw, signed(raw), {}))[0] == 200
    [report] = sink.reports
    assert (report.status, report.error_code) == (DeliveryStatus.ERROR, "whatsapp:131026")
    assert "Сообщение не доставлено - Получатель недоступен 📵" in report.description


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"", b"[1, 2]", b'"text"'])
async def test_a_signed_body_that_is_not_a_json_object_is_a_400(
    provider: WhatsAppProvider, sink: RecordingSink, raw: bytes
) -> None:
    status, _, _ = await routes(provider)["POST"](raw, signed(raw), {})
    assert status == 400
    assert sink.reports == []


def one(name: str) -> StatusReport:
    [report] = parse_statuses(json.loads(fixture(name)))
    return report


# fixture -> (status, raw_state, is_read, is_final, error_code, occurred_at)
STATUS_ROWS = [
    ("sent.json", DeliveryStatus.RECEIVED, "sent", False, False, None, 1749416383000),
    ("delivered.json", DeliveryStatus.DELIVERED, "delivered", False, True, None, 1749416385000),
    ("read.json", DeliveryStatus.DELIVERED, "read", True, True, None, 1749416390000),
    ("failed.json", DeliveryStatus.ERROR, "failed", False, True, "whatsapp:131026", 1749416391000),
    ("failed_expired.json", DeliveryStatus.EXPIRED, "failed", False, True, "whatsapp:410", 1749416391000),
    ("unknown_status.json", DeliveryStatus.UNKNOWN, "warning", False, False, None, 1749416392000),
]


@pytest.mark.parametrize(
    ("name", "status", "raw_state", "is_read", "is_final", "error_code", "occurred_at"), STATUS_ROWS
)
def test_status_mapping(
    name: str,
    status: DeliveryStatus | None,
    raw_state: str,
    is_read: bool,
    is_final: bool,
    error_code: str | None,
    occurred_at: int,
) -> None:
    report = one(name)
    assert (report.status, report.raw_state, report.is_read, report.is_final) == (
        status,
        raw_state,
        is_read,
        is_final,
    )
    assert (report.error_code, report.occurred_at, report.provider) == (error_code, occurred_at, "whatsapp")
    assert (report.provider_key, report.message_id) == (WAMID, MESSAGE_ID)
    assert report.dedup_key == f"whatsapp:{WAMID}:{raw_state}:{occurred_at // 1000}"
    assert report.details["recipient_id"] == "4915112345678"
    assert report.description


def test_failure_descriptions_name_the_cause() -> None:
    assert one("failed.json").description == (
        "Message undeliverable: the number is not on WhatsApp, has not accepted the terms, or cannot receive "
        "this message (WhatsApp error 131026: Message undeliverable - Message Undeliverable.)"
    )
    assert one("failed_expired.json").description.startswith("Message expired")
    assert "does not know: warning" in one("unknown_status.json").description


def test_a_batch_gives_every_status_in_order_and_ignores_inbound_messages() -> None:
    reports = parse_statuses(json.loads(fixture("batch.json")))
    assert [(r.raw_state, r.status, r.is_read, r.error_code, r.message_id) for r in reports] == [
        ("sent", DeliveryStatus.RECEIVED, False, None, MESSAGE_ID),
        ("delivered", DeliveryStatus.DELIVERED, False, None, MESSAGE_ID),
        ("read", DeliveryStatus.DELIVERED, True, None, "msg_01JDX3Q8A1B2C3D4E5F6G7H8J9"),
        ("failed", DeliveryStatus.ERROR, False, "whatsapp:131047", "msg_01JDX3Q8K0M1N2P3Q4R5S6T7V8"),
        ("played", DeliveryStatus.DELIVERED, True, None, None),  # another app's callback data
    ]
    assert "24 hours" in reports[3].description
    assert "template" in reports[3].description


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        pytest.param(
            ["read.json", "delivered.json", "sent.json"],
            [
                ("read", DeliveryStatus.DELIVERED, True),
                ("delivered", DeliveryStatus.DELIVERED, False),
                ("sent", DeliveryStatus.RECEIVED, False),
            ],
            id="read-before-delivered",
        ),
        pytest.param(
            ["sent.json", "delivered.json", "failed.json"],
            [
                ("sent", DeliveryStatus.RECEIVED, False),
                ("delivered", DeliveryStatus.DELIVERED, False),
                ("failed", DeliveryStatus.ERROR, False),
            ],
            id="failed-after-delivered",
        ),
        pytest.param(
            ["delivered.json", "delivered.json"],
            [("delivered", DeliveryStatus.DELIVERED, False)] * 2,
            id="duplicate",
        ),
    ],
)
async def test_sequences_are_reported_as_they_come(
    provider: WhatsAppProvider, sink: RecordingSink, sequence: list[str], expected: list[tuple[Any, ...]]
) -> None:
    for name in sequence:
        raw = fixture(name)
        assert (await routes(provider)["POST"](raw, signed(raw), {}))[0] == 200
    assert [(r.raw_state, r.status, r.is_read) for r in sink.reports] == expected
    if len(set(sequence)) == 1:  # the same webhook twice: the same dedup key, for the lifecycle to drop
        assert sink.reports[0] == sink.reports[1]


async def test_a_failure_to_record_is_a_500_so_meta_retries(caplog: pytest.LogCaptureFixture) -> None:
    sink = RecordingSink(failures=1)
    provider = WhatsAppProvider(SETTINGS)
    await provider.start(sink)
    try:
        raw = fixture("batch.json")
        assert (await routes(provider)["POST"](raw, signed(raw), {}))[0] == 500
        assert (await routes(provider)["POST"](raw, signed(raw), {}))[0] == 200
    finally:
        await provider.stop()
    assert len(sink.reports) == 5
    assert any("could not record" in r.getMessage() for r in caplog.records)


async def test_webhooks_before_start_are_refused_with_a_503() -> None:
    raw = fixture("sent.json")
    assert (await routes(WhatsAppProvider(SETTINGS))["POST"](raw, signed(raw), {}))[0] == 503


async def test_other_objects_and_statusless_bodies_are_acknowledged(
    provider: WhatsAppProvider, sink: RecordingSink
) -> None:
    for document in (
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account", "entry": [{"changes": 3}]},
    ):
        raw = json.dumps(document).encode()
        assert (await routes(provider)["POST"](raw, signed(raw), {}))[0] == 200
    assert sink.reports == []


def test_malformed_status_items_are_skipped() -> None:
    value = {
        "statuses": [
            {"status": "sent"},
            {"id": "wamid.X"},
            7,
            {"id": "wamid.Y", "status": "sent", "timestamp": "x"},
        ]
    }
    [report] = parse_statuses({"entry": [{"changes": [{"value": value}]}]})
    assert (report.provider_key, report.message_id, report.dedup_key) == (
        "wamid.Y",
        None,
        "whatsapp:wamid.Y:sent:x",
    )


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300), secret=st.binary(min_size=1, max_size=40), flip=st.integers(min_value=0))
def test_signatures_hold_only_for_the_exact_bytes(body: bytes, secret: bytes, flip: int) -> None:
    header = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert signature_matches(secret, body, header)
    if body:
        index = flip % len(body)
        tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        assert not signature_matches(secret, tampered, header)
    assert not signature_matches(secret + b"x", body, header)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=20,
)
STATUSISH = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON | st.just(WAMID),
        "status": JSON | st.sampled_from(["sent", "delivered", "read", "failed", "played", "deleted"]),
        "timestamp": JSON | st.just("1749416383"),
        "errors": JSON | st.just([{"code": "131026"}]),
        "biz_opaque_callback_data": JSON | st.just(MESSAGE_ID),
    },
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entry=JSON, statuses=st.lists(STATUSISH, max_size=4))
def test_parsing_never_fails_on_odd_documents(entry: Any, statuses: list[dict[str, Any]]) -> None:
    parse_statuses({"entry": entry})
    for report in parse_statuses({"entry": [{"changes": [{"value": {"statuses": statuses}}]}]}):
        assert len(report.dedup_key) <= 200
        assert len(report.description) <= 300
        known = report.raw_state in {"sent", "delivered", "read", "failed", "played"}
        assert known or (report.status, report.is_final) == (DeliveryStatus.UNKNOWN, False)
