"""The retry decision as a table: a claim, a provider's error, the policy, a clock and a jitter
in; what happens next out. No database, no clock, no randomness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from partner_gateway.channels.base import SendError, SubmittedPart
from partner_gateway.config import Settings
from partner_gateway.dispatch.claim import Claim
from partner_gateway.dispatch.retry_policy import (
    EXPIRED_BEFORE_HANDOVER,
    Ambiguous,
    Decision,
    Fail,
    Fallback,
    Retry,
    RetryPolicy,
    decide,
    provider_failure,
)
from partner_gateway.domain import error_codes
from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.store.repositories.delivery import ClaimedItem

NOW = 1_800_000_000_000
HOUR = 3_600_000
POLICY = RetryPolicy(max_attempts=5, max_delay_seconds=300, resend_ambiguous=False)
RESENDING = RetryPolicy(max_attempts=5, max_delay_seconds=300, resend_ambiguous=True)
FALLBACK = {"text": "Your parcel (SMS)", "from": "ACME"}


def claim(*, attempts: int = 0, expires_in: int = HOUR, **content: Any) -> Claim:
    item = ClaimedItem(
        outbox_id=1,
        attempts=attempts,
        parts_done=0,
        message_id="msg_01",
        company_id="cmp_01",
        channel=Channel.RCS,
        to="+4915112345698",
        sender=None,
        body=json.dumps({"text": "Your parcel", **content}),
        created_at=NOW - 1000,
        expires_at=NOW + expires_in,
    )
    return Claim.of(item)


def exhausted(last: str) -> Fail:
    meaning, code = error_codes.RETRIES_EXHAUSTED.meaning, error_codes.RETRIES_EXHAUSTED.code
    return Fail(DeliveryStatus.ERROR, f"{meaning} Last: {last}", code, "retries-exhausted")


UNREACHABLE = SendError("permanent", "Not reachable over RCS", code="rbm:404", channel_unavailable=True)
INVALID = SendError("permanent", "Invalid destination address", code="smpp:0x0000000B")
NO_ANSWER = SendError("ambiguous", "No submit_sm_resp within 10 s")
DOWN = SendError("retry", "Connection refused")
THROTTLED = SendError("throttled", "ESME_RTHROTTLED", code="smpp:0x00000058", retry_after=0.01)

CASES: list[tuple[str, Claim, SendError, RetryPolicy, float, Decision]] = [
    # the fallback comes first, whatever the error's kind
    ("unreachable, with a fallback", claim(fallbackSms=FALLBACK), UNREACHABLE, POLICY, 1.0, Fallback()),
    ("unreachable, with a fallback, retryable", claim(fallbackSms=FALLBACK),
     SendError("retry", "busy", channel_unavailable=True), POLICY, 1.0, Fallback()),
    ("unreachable, no fallback", claim(), UNREACHABLE,
     POLICY, 1.0, Fail(DeliveryStatus.ERROR, "Not reachable over RCS", "rbm:404", "rbm:404")),
    ("unreachable, an empty fallback", claim(fallbackSms={}), UNREACHABLE,
     POLICY, 1.0, Fail(DeliveryStatus.ERROR, "Not reachable over RCS", "rbm:404", "rbm:404")),
    ("a fallback, but the channel is there", claim(fallbackSms=FALLBACK), DOWN, POLICY, 1.0, Retry(NOW + 1000)),
    # permanent: ERROR with the provider's words, even on the last attempt or past expiry
    ("permanent", claim(), INVALID, POLICY, 1.0,
     Fail(DeliveryStatus.ERROR, "Invalid destination address", "smpp:0x0000000B", "smpp:0x0000000B")),
    ("permanent, no code", claim(), SendError("permanent", "Refused"), POLICY, 1.0,
     Fail(DeliveryStatus.ERROR, "Refused", None, "rejected")),
    ("permanent, attempts spent", claim(attempts=9, expires_in=1), INVALID, POLICY, 1.0,
     Fail(DeliveryStatus.ERROR, "Invalid destination address", "smpp:0x0000000B", "smpp:0x0000000B")),
    # ambiguous: not resent, unless the policy says so; then it is retried like any other
    ("ambiguous", claim(), NO_ANSWER, POLICY, 1.0, Ambiguous()),
    ("ambiguous, attempts spent", claim(attempts=9), NO_ANSWER, POLICY, 1.0, Ambiguous()),
    ("ambiguous, resent", claim(attempts=2), NO_ANSWER, RESENDING, 1.0, Retry(NOW + 4000)),
    ("ambiguous, resent, attempts spent", claim(attempts=5), NO_ANSWER, RESENDING, 1.0,
     exhausted("No submit_sm_resp within 10 s")),
    # the delay: retry_after, or 2^attempts s up to the cap, times the jitter
    ("first retry", claim(), DOWN, POLICY, 1.0, Retry(NOW + 1000)),
    ("third retry", claim(attempts=3), DOWN, POLICY, 1.0, Retry(NOW + 8000)),
    ("jitter low", claim(attempts=3), DOWN, POLICY, 0.8, Retry(NOW + 6400)),
    ("jitter high", claim(attempts=3), DOWN, POLICY, 1.2, Retry(NOW + 9600)),
    ("capped", claim(attempts=4), DOWN, RetryPolicy(30, 10, False), 1.0, Retry(NOW + 10_000)),
    ("the exponent stops at 16", claim(attempts=40, expires_in=10**9), DOWN,
     RetryPolicy(99, 10**6, False), 1.0, Retry(NOW + 65_536_000)),
    ("throttled, retry_after", claim(attempts=3), THROTTLED, POLICY, 1.0, Retry(NOW + 10)),
    ("throttled, retry_after, jitter", claim(attempts=3), THROTTLED, POLICY, 1.2, Retry(NOW + 12)),
    ("retry_after 0 means none", claim(attempts=1), SendError("throttled", "slow", retry_after=0.0),
     POLICY, 1.0, Retry(NOW + 2000)),
    ("retry_after over the cap is kept", claim(), SendError("throttled", "slow", retry_after=900),
     POLICY, 1.0, Retry(NOW + 900_000)),
    # past expiry, then attempts spent, in that order
    ("the next attempt 1 ms before expiry", claim(expires_in=1001), DOWN, POLICY, 1.0, Retry(NOW + 1000)),
    ("the next attempt at expiry", claim(expires_in=1000), DOWN, POLICY, 1.0, EXPIRED_BEFORE_HANDOVER),
    ("the next attempt past expiry", claim(attempts=3, expires_in=5000), DOWN, POLICY, 1.0,
     EXPIRED_BEFORE_HANDOVER),
    ("past expiry with attempts spent", claim(attempts=5, expires_in=10), DOWN, POLICY, 1.0,
     EXPIRED_BEFORE_HANDOVER),
    ("attempts spent", claim(attempts=5), DOWN, POLICY, 1.0, exhausted("Connection refused")),
    ("one attempt left", claim(attempts=4), DOWN, POLICY, 1.0, Retry(NOW + 16_000)),
    ("throttled, attempts spent", claim(attempts=7), THROTTLED, POLICY, 1.0, exhausted("ESME_RTHROTTLED")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("claimed", "error", "policy", "jitter", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide(
    claimed: Claim, error: SendError, policy: RetryPolicy, jitter: float, expected: Decision
) -> None:
    assert decide(claimed, error, policy, NOW, jitter) == expected


def test_expired_before_handover_carries_the_gateway_code() -> None:
    assert (
        Fail(
            DeliveryStatus.EXPIRED,
            error_codes.EXPIRED_BEFORE_HANDOVER.meaning,
            "gw:expired-before-handover",
            "validity-ended",
        )
        == EXPIRED_BEFORE_HANDOVER
    )


def test_parts_accepted_before_a_failure_do_not_change_the_decision() -> None:
    part = SubmittedPart(1, 2, "ID1", "id1")
    partial = SendError("retry", "Connection reset", provider="smpp", accepted_parts=[part])
    assert decide(claim(attempts=1), partial, POLICY, NOW, 1.0) == Retry(NOW + 2000)


@pytest.mark.parametrize(
    ("written", "kind"), [(False, "retry"), (True, "ambiguous")], ids=["before-the-write", "after-the-write"]
)
def test_an_unexpected_provider_exception_is_ambiguous_once_written(written: bool, kind: str) -> None:
    error = provider_failure(ConnectionResetError("peer"), written)
    assert (error.kind, error.description) == (kind, "Provider failure: ConnectionResetError")


def test_the_policy_is_read_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, retry_max_attempts=7, retry_max_delay_seconds=42, resend_ambiguous=True
    )
    assert RetryPolicy.of(settings) == RetryPolicy(
        max_attempts=7, max_delay_seconds=42, resend_ambiguous=True
    )
