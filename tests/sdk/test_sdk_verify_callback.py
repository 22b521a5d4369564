"""`verify_callback` against the gateway's own signing (callbacks/signing.py): any of several
`v1` signatures under any of several secrets, stale and future timestamps refused, malformed
headers refused, the same verdict as the gateway's `verify` on any input; an `inbound` body (the
gateway's own inbound_callback_body) read as an InboundEvent, a status body as a CallbackEvent."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from partner_gateway.callbacks.signing import InvalidSignature, sign, verify
from partner_gateway.domain.inbound import InboundMessageResponse, inbound_callback_body
from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.domain.wire import callback_body, status_item
from partner_gateway_sdk import (
    CallbackEvent,
    InboundEvent,
    InvalidSignatureError,
    parse_callback,
    verify_callback,
)
from partner_gateway_sdk.callbacks import verify_signature

OLD, NEW = "whsec_old-secret", "whsec_new-secret"
NOW = 1_796_000_000
BODY = callback_body(
    status_item(
        "msg_01KB0000000000000000000000",
        Channel.SMS,
        "+4915112345678",
        "order-1234",
        DeliveryStatus.DELIVERED,
        "Delivered to the handset",
        None,
        1_795_999_990_000,
        1_795_999_999_500,
        None,
        "GSM7",
        1,
    ),
    event_id="evt_01KB0000000000000000000000",
    occurred_at=1_795_999_999_500,
    sequence=2,
)


def headers(secrets: list[str], timestamp: int = NOW, body: bytes = BODY) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Partner-Gateway-Signature": sign(secrets, timestamp, body)}


def test_a_callback_signed_with_its_secret_is_its_event() -> None:
    event = verify_callback(NEW, headers([NEW]), BODY, now=NOW)
    assert (event.customer_message_id, event.event_id, event.sequence) == (
        "msg_01KB0000000000000000000000",
        "evt_01KB0000000000000000000000",
        2,
    )
    assert event.delivery_status == "DELIVERED"
    assert event.occurred_at is not None
    assert event.occurred_at == datetime.fromtimestamp(1_795_999_999.5, UTC)


@pytest.mark.parametrize(
    ("signed_with", "receiver_has"),
    [
        ([NEW, OLD], [OLD]),  # during a rotation: a receiver that still has only the old secret
        ([NEW, OLD], [NEW]),  # one that has moved to the new one
        ([NEW, OLD], [NEW, OLD]),
        ([OLD], [NEW, OLD]),  # a receiver that rotated first, the gateway still signing with the old
        ([NEW], ["whsec_unrelated", NEW]),
    ],
)
def test_any_v1_under_any_secret_is_accepted(signed_with: list[str], receiver_has: list[str]) -> None:
    assert verify_callback(receiver_has, headers(signed_with), BODY, now=NOW).sequence == 2


def test_no_matching_secret_or_a_changed_body_is_refused() -> None:
    with pytest.raises(InvalidSignatureError, match="no signature matches"):
        verify_callback(["whsec_a", "whsec_b"], headers([NEW, OLD]), BODY, now=NOW)
    with pytest.raises(InvalidSignatureError, match="no signature matches"):
        verify_callback(NEW, headers([NEW]), BODY.replace(b"DELIVERED", b"ERROR"), now=NOW)
    respaced = BODY.replace(b",", b", ")  # decoded and encoded again: not the bytes that were signed
    with pytest.raises(InvalidSignatureError):
        verify_callback(NEW, headers([NEW]), respaced, now=NOW)


@pytest.mark.parametrize(
    ("now", "accepted"),
    [
        (NOW, True),
        (NOW + 300, True),  # exactly the tolerance old
        (NOW + 301, False),  # stale: a captured callback replayed later
        (NOW - 300, True),
        (NOW - 301, False),  # dated in the future
    ],
)
def test_the_timestamp_must_be_within_the_tolerance_either_way(now: int, accepted: bool) -> None:
    if accepted:
        verify_callback(NEW, headers([NEW]), BODY, now=now)
    else:
        with pytest.raises(InvalidSignatureError, match=r"old|future"):
            verify_callback(NEW, headers([NEW]), BODY, now=now)


def test_the_tolerance_is_the_callers() -> None:
    verify_callback(NEW, headers([NEW]), BODY, tolerance=3_600, now=NOW + 3_000)
    with pytest.raises(InvalidSignatureError):
        verify_callback(NEW, headers([NEW]), BODY, tolerance=10, now=NOW + 11)


def test_now_defaults_to_the_clock() -> None:
    import time

    fresh = headers([NEW], timestamp=int(time.time()))
    assert verify_callback(NEW, fresh, BODY).sequence == 2
    with pytest.raises(InvalidSignatureError):
        verify_callback(NEW, headers([NEW], timestamp=int(time.time()) - 3_600), BODY)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "t=1796000000",  # no v1
        "v1=abcd",  # no t
        f"t={NOW},t={NOW},v1=abcd",  # two timestamps
        "t=soon,v1=abcd",
        "t=-1796000000,v1=abcd",
        "t=１７９６,v1=abcd",  # non-ASCII digits
        "garbage",
    ],
)
def test_a_malformed_header_is_refused(value: str) -> None:
    with pytest.raises(InvalidSignatureError):
        verify_callback(NEW, {"X-Partner-Gateway-Signature": value}, BODY, now=NOW)


def test_a_missing_header_is_refused_and_secrets_are_required() -> None:
    with pytest.raises(InvalidSignatureError, match="no X-Partner-Gateway-Signature"):
        verify_callback(NEW, {"Content-Type": "application/json"}, BODY, now=NOW)
    with pytest.raises(ValueError, match="secret"):
        verify_callback([], headers([NEW]), BODY, now=NOW)
    with pytest.raises(ValueError, match="secret"):
        verify_callback("", headers([NEW]), BODY, now=NOW)


def test_headers_in_any_form_and_case_and_a_later_scheme_skipped() -> None:
    value = sign([NEW], NOW, BODY) + ",v2=from-the-future"
    forms = [
        {"x-partner-gateway-signature": value},
        {"X-PARTNER-GATEWAY-SIGNATURE": value},
        httpx.Headers({"X-Partner-Gateway-Signature": value}),
        [(b"content-type", b"application/json"), (b"x-partner-gateway-signature", value.encode())],  # ASGI
        [("X-Partner-Gateway-Signature", value)],
    ]
    for form in forms:
        assert verify_callback(NEW, form, BODY, now=NOW).sequence == 2
    assert verify_callback(NEW, {"X-Partner-Gateway-Signature": value}, BODY.decode(), now=NOW).sequence == 2


def test_a_valid_signature_over_a_body_that_is_no_callback_is_refused() -> None:
    for body in (b'{"hello": 1}', b'{"event": "billing", "eventId": "evt_1"}', b"[1]"):
        with pytest.raises(InvalidSignatureError, match="not a callback event"):
            verify_callback(NEW, headers([NEW], body=body), body, now=NOW)


def test_an_inbound_callback_is_an_inbound_event_and_a_status_one_is_not() -> None:
    body = inbound_callback_body(
        InboundMessageResponse(
            id="in_01KB0000000000000000000000",
            channel=Channel.WHATSAPP,
            from_="+4915112345678",
            to="+15550001234",
            type="text",
            text="Yes, 10:30 works",
            received_at="2026-12-02T15:57:14.325Z",
            parts=1,
            provider_message_id="wamid.HBg",
        ),
        event_id="evt_01KB0000000000000000000001",
        occurred_at="2026-12-02T15:57:14.330Z",
    )
    event = verify_callback(NEW, headers([NEW], body=body), body, now=NOW)
    assert isinstance(event, InboundEvent)
    assert not isinstance(event, CallbackEvent)
    assert (event.id, event.channel, event.sender, event.to, event.text) == (
        "in_01KB0000000000000000000000", "WHATSAPP", "+4915112345678", "+15550001234", "Yes, 10:30 works",
    )  # fmt: skip
    assert (event.type, event.parts, event.provider_message_id) == ("text", 1, "wamid.HBg")
    assert (event.event_id, event.sequence) == ("evt_01KB0000000000000000000001", 1)
    assert event.received_at == datetime(2026, 12, 2, 15, 57, 14, 325_000, UTC)
    assert event.occurred_at == datetime(2026, 12, 2, 15, 57, 14, 330_000, UTC)
    assert event.raw["event"] == "inbound"
    assert parse_callback(body) == event  # the same, for a body verified elsewhere
    status = verify_callback(NEW, headers([NEW]), BODY, now=NOW)
    assert isinstance(status, CallbackEvent)
    assert not isinstance(status, InboundEvent)


@given(
    secrets=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=3),
    receiver=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=3),
    body=st.binary(max_size=200),
    timestamp=st.integers(min_value=0, max_value=4_000_000_000),
    now=st.integers(min_value=0, max_value=4_000_000_000),
    share=st.booleans(),
)
def test_the_same_verdict_as_the_gateway_s_verify(
    secrets: list[str], receiver: list[str], body: bytes, timestamp: int, now: int, share: bool
) -> None:
    if share:
        receiver = [*receiver, secrets[-1]]
    if share and now % 2:
        now = timestamp + now % 600 - 300  # near the timestamp: inside and outside the tolerance
    header = sign(secrets, timestamp, body)
    try:
        expected: int | None = verify(header, body, receiver, now=now)
    except InvalidSignature:
        expected = None
    try:
        ours: int | None = verify_signature(receiver, header, body, now=now)
    except InvalidSignatureError:
        ours = None
    assert ours == expected
