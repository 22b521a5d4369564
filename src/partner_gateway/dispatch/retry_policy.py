"""What follows a failed hand-over: a pure decision from the error, the claim and the policy.

    decide(claim, error, policy, now, jitter)
    │
    ├─ error.channel_unavailable and the message has a fallbackSms ─────────► Fallback
    ├─ error.kind "permanent" ──────────────► Fail(ERROR, the provider's description and code)
    ├─ error.kind "ambiguous", policy.resend_ambiguous off ─────────────────► Ambiguous
    └─ "retry", "throttled" (or "ambiguous" to be resent): the next attempt is at
       now + delay × jitter, delay = error.retry_after, or else 2^min(attempts, 16) s
       capped at policy.max_delay_seconds
       ├─ at or past the message's expiry ─────► Fail(EXPIRED, EXPIRED_BEFORE_HANDOVER)
       ├─ attempts ≥ policy.max_attempts ──────► Fail(ERROR, RETRIES_EXHAUSTED "… Last: …")
       └─ otherwise ───────────────────────────► Retry(at)

Nothing here reads a clock or draws a random number: `now` and `jitter` (a factor drawn from
`JITTER`) come in, so the same inputs always decide the same. Executing a decision (writing the
status, sending the fallback, watching for a receipt) is the hand-over's job.
"""

from __future__ import annotations

from dataclasses import dataclass

from partner_gateway.channels.base import SendError
from partner_gateway.config import Settings
from partner_gateway.dispatch.claim import Claim
from partner_gateway.domain import error_codes
from partner_gateway.domain.statuses import DeliveryStatus

JITTER = (0.8, 1.2)  # the spread of a retry's delay, so throttled messages do not return together
MAX_BACKOFF_EXPONENT = 16


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    max_delay_seconds: float
    resend_ambiguous: bool  # resend a hand-over that got no answer, rather than end it UNKNOWN

    @classmethod
    def of(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.retry_max_attempts, settings.retry_max_delay_seconds, settings.resend_ambiguous)


@dataclass(frozen=True, slots=True)
class Retry:
    """Hand the item over again at `at` (epoch ms), after the parts already accepted."""

    at: int


@dataclass(frozen=True, slots=True)
class Fail:
    """End the message with this status; `dedup` names the report (its raw state)."""

    status: DeliveryStatus
    description: str
    code: str | None
    dedup: str


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """The provider may have the message: do not resend it (see dispatch/unanswered.py)."""


@dataclass(frozen=True, slots=True)
class Fallback:
    """Send the message's fallback SMS in its place (see dispatch/fallback.py)."""


Decision = Retry | Fail | Ambiguous | Fallback

EXPIRED_BEFORE_HANDOVER = Fail(
    DeliveryStatus.EXPIRED,
    error_codes.EXPIRED_BEFORE_HANDOVER.meaning,
    error_codes.EXPIRED_BEFORE_HANDOVER.code,
    "validity-ended",
)
NO_PROVIDER = Fail(
    DeliveryStatus.ERROR, error_codes.NO_PROVIDER.meaning, error_codes.NO_PROVIDER.code, "no-provider"
)
OPTED_OUT = Fail(DeliveryStatus.ERROR, error_codes.OPTED_OUT.meaning, error_codes.OPTED_OUT.code, "opted-out")


def decide(claim: Claim, error: SendError, policy: RetryPolicy, now: int, jitter: float) -> Decision:
    """The tree in this module's docstring; `jitter` is a factor within `JITTER`."""
    if error.channel_unavailable and claim.fallback_sms:
        return Fallback()
    if error.kind == "permanent":
        return Fail(DeliveryStatus.ERROR, error.description, error.code, error.code or "rejected")
    if error.kind == "ambiguous" and not policy.resend_ambiguous:
        return Ambiguous()
    attempts = claim.item.attempts
    delay = error.retry_after or min(2.0 ** min(attempts, MAX_BACKOFF_EXPONENT), policy.max_delay_seconds)
    at = now + int(delay * jitter * 1000)
    if at >= claim.item.expires_at:
        return EXPIRED_BEFORE_HANDOVER
    if attempts >= policy.max_attempts:
        return Fail(
            DeliveryStatus.ERROR,
            f"{error_codes.RETRIES_EXHAUSTED.meaning} Last: {error.description}",
            error_codes.RETRIES_EXHAUSTED.code,
            "retries-exhausted",
        )
    return Retry(at)


def provider_failure(error: Exception, written: bool) -> SendError:
    """A provider that raised something other than SendError (a bug, a dropped connection): the
    message may have gone out once its first byte was written, so it is ambiguous; before that,
    nothing was sent and it is retried."""
    failure = f"Provider failure: {type(error).__name__}"
    return SendError("ambiguous", failure) if written else SendError("retry", failure)
