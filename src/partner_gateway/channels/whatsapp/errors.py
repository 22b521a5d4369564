"""What a Graph API error means for a send: retry, throttle, or give up (`rule_for`).

Classified by the Graph `error.code` (`SEND_ERRORS`), else by the HTTP status as every HTTP provider
classifies it (channels/http_errors.py), in WhatsApp's words (`BY_HTTP_STATUS`); provider.py's table
shows both together.

The codes are those of Meta's Cloud API error-code reference (as copied by BSPs: Kaleyra, Niswey,
360dialog) and pywa 4.5.0 `errors.py`. Failed-status webhooks carry the same codes, so their
descriptions come from here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from partner_gateway.channels.base import SendErrorKind
from partner_gateway.channels.http_errors import HttpRefusal, refusal_for_status

CREDENTIALS_RETRY_SECONDS: Final = 300.0  # a refused token stays refused until an operator acts


@dataclass(frozen=True, slots=True)
class ErrorRule:
    kind: SendErrorKind
    text: str
    retry_after: float | None = None
    credentials: bool = False  # our token or account set-up is at fault: the operator must act


def _setup(text: str) -> ErrorRule:
    """Nothing can be sent until an operator fixes the set-up: keep the messages, retry slowly."""
    return ErrorRule("retry", text, CREDENTIALS_RETRY_SECONDS, credentials=True)


_CHECK = "check the WhatsApp access token and its permissions"
SEND_ERRORS: Final[Mapping[int, ErrorRule]] = MappingProxyType(
    {
        # Authorisation and set-up.
        0: _setup(f"WhatsApp could not authenticate the request: {_CHECK}"),
        3: _setup(f"The access token lacks a capability: {_CHECK}"),
        10: _setup(f"Permission denied: {_CHECK}"),
        190: _setup(f"The access token has expired or is invalid: {_CHECK}"),
        200: _setup(f"Permission denied: {_CHECK}"),
        133010: _setup("The business phone number is not registered with the Cloud API"),
        # Throttling: WhatsApp asked us to slow down.
        4: ErrorRule("throttled", "The app reached its Graph API call rate limit", 60.0),
        80007: ErrorRule("throttled", "The WhatsApp Business Account reached its rate limit", 60.0),
        130429: ErrorRule("throttled", "The Cloud API throughput limit was reached", 1.0),
        131048: ErrorRule(
            "throttled", "Spam rate limit: too many recent messages from this number were flagged", 60.0
        ),
        131056: ErrorRule("throttled", "Too many messages to the same recipient (pair rate limit)", 6.0),
        # Transient: nothing was accepted; try again.
        1: ErrorRule("retry", "WhatsApp reported an unknown error"),
        2: ErrorRule("retry", "The WhatsApp API is temporarily unavailable"),
        131000: ErrorRule("retry", "Something went wrong at WhatsApp"),
        131016: ErrorRule("retry", "A WhatsApp service is temporarily unavailable"),
        # Permanent for this message.
        100: ErrorRule(
            "permanent", "WhatsApp refused a parameter (for example a destination that is not a valid number)"
        ),
        131008: ErrorRule("permanent", "A required parameter is missing"),
        131009: ErrorRule("permanent", "A parameter value is not valid"),
        131026: ErrorRule(
            "permanent",
            "Message undeliverable: the number is not on WhatsApp, has not accepted the terms, "
            "or cannot receive this message",
        ),
        131047: ErrorRule(
            "permanent",
            "More than 24 hours have passed since the customer last replied to this number: "
            "only a template message can be sent now",
        ),
        131049: ErrorRule(
            "permanent",
            "Not delivered to maintain a healthy ecosystem (WhatsApp's per-user limit on marketing "
            "messages); do not resend within 24 hours",
        ),
        131050: ErrorRule("permanent", "The recipient has stopped marketing messages from this business"),
        131051: ErrorRule("permanent", "Unsupported message type"),
        132000: ErrorRule("permanent", "The number of template parameters does not match the template"),
        132001: ErrorRule("permanent", "The template does not exist in this language or is not approved"),
        132005: ErrorRule("permanent", "The template's text is too long once its parameters are filled in"),
        132007: ErrorRule("permanent", "The template's content violates a WhatsApp policy"),
        132012: ErrorRule("permanent", "A template parameter has the wrong format"),
        132015: ErrorRule("permanent", "The template is paused because of low quality"),
        132016: ErrorRule("permanent", "The template is disabled"),
        368: ErrorRule("permanent", "The WhatsApp Business Account is restricted for policy violations"),
        131031: ErrorRule("permanent", "The WhatsApp Business Account is locked"),
        131042: ErrorRule("permanent", "A payment problem on the WhatsApp Business Account"),
        # Seen in failed-status webhooks: the message was not delivered within its time to live.
        410: ErrorRule("permanent", "Message expired: WhatsApp could not deliver it within its time to live"),
    }
)


# Kept in step with HttpRefusal.kind (tests/channels/whatsapp check it).
BY_HTTP_STATUS: Final[Mapping[HttpRefusal, ErrorRule]] = MappingProxyType(
    {
        HttpRefusal.CREDENTIALS: _setup(f"WhatsApp refused the credentials: {_CHECK}"),
        HttpRefusal.THROTTLED: ErrorRule("throttled", "WhatsApp asked us to slow down", 1.0),
        HttpRefusal.UNAVAILABLE: ErrorRule("retry", "WhatsApp is temporarily unavailable"),
        HttpRefusal.REFUSED: ErrorRule("permanent", "WhatsApp refused the message"),
    }
)


def rule_for(code: int | None, http_status: int) -> ErrorRule:
    """How to treat a Graph error: by its code when known, else by the HTTP status."""
    if code is not None and code in SEND_ERRORS:
        return SEND_ERRORS[code]
    return BY_HTTP_STATUS[refusal_for_status(http_status)]
