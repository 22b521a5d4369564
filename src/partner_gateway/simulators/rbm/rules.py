"""The RBM simulator's settings, script and counters, and its pure rules: each destination's fate
(SPEC §6, table in the package docstring) and what an AgentMessage must look like to be taken."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

TTL_PATTERN: Final = re.compile(r"(\d{1,9})(?:\.\d{1,9})?s")
_SUGGESTION_ACTIONS: Final = ("dialAction", "openUrlAction", "viewLocationAction", "shareLocationAction")


@dataclass(frozen=True, slots=True, kw_only=True)
class RbmSimConfig:
    """Settings of the simulated RBM platform. Times are seconds."""

    public_key_pem: str  # the service account's public key: token requests must be signed by its pair
    host: str = "127.0.0.1"
    port: int = 0  # 0 = an ephemeral port; start() returns the one bound
    agent_id: str = "sim-agent"
    service_account_email: str = "gateway@simulator.iam.gserviceaccount.com"
    client_token: str = "sim-client-token"  # noqa: S105 - the simulator's webhook key, loopback only
    webhook_url: str | None = None  # where events go; may be set later on RbmSimulator.webhook_url
    access_token_lifetime_seconds: int = 3600
    event_delay_seconds: float = 0.05  # DELIVERED (and IS_TYPING, EVENT_TYPE_UNSPECIFIED) after acceptance
    read_delay_seconds: float = 0.05  # READ after DELIVERED
    webhook_attempts: int = 3  # posts of one event at most (the first and the retries)
    webhook_retry_delay_seconds: float = 0.1
    webhook_timeout_seconds: float = 5.0
    rejection_status: Literal[400, 403] = 400  # what destinations ending in 96 get
    max_tracked_messages: int = 100_000
    # Compressed time for demos and end-to-end tests: a message's TTL events come after
    # min(ttl, this) seconds. None: at the real TTL, as Google sends them.
    ttl_cap_seconds: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is not 0-65535")
        if min(self.event_delay_seconds, self.read_delay_seconds, self.webhook_retry_delay_seconds) < 0:
            problems.append("delays cannot be negative")
        if (
            self.webhook_attempts < 1
            or self.max_tracked_messages < 1
            or self.access_token_lifetime_seconds < 1
        ):
            problems.append(
                "webhook_attempts, max_tracked_messages and access_token_lifetime_seconds must be >= 1"
            )
        if self.webhook_timeout_seconds <= 0:
            problems.append("webhook_timeout_seconds must be positive")
        if self.rejection_status not in (400, 403):
            problems.append("rejection_status is 400 or 403")
        if problems:
            raise ValueError("invalid RbmSimConfig: " + "; ".join(problems))


@dataclass(slots=True, kw_only=True)
class RbmSimScript:
    """Misbehaviour on demand; change it while the simulator runs."""

    reverse_events: bool = False  # a message's events are posted last first (READ before DELIVERED)
    duplicate_events: bool = False  # every event is posted twice (same eventId, as a redelivery)
    bad_signatures: int = 0  # the next N events are signed with a wrong key (on every attempt)


@dataclass(slots=True, kw_only=True)
class RbmSimStats:
    token_requests: int = 0
    tokens_issued: int = 0
    token_rejections: int = 0
    sends: int = 0  # every create request
    accepted: int = 0
    rejected: int = 0  # refused by fate (404, 400, 403)
    invalid: int = 0  # 400 for a malformed request
    unauthorized: int = 0  # 401
    duplicates: int = 0  # a messageId already accepted: 409 ALREADY_EXISTS
    sends_by_content: dict[tuple[str, str], int] = field(default_factory=dict)  # (phone, contentMessage)
    revokes: int = 0  # 200 answers to DELETE
    events_posted: int = 0  # events the webhook acknowledged (2xx)
    user_messages: int = 0  # user messages posted (send_user_message, POST /simulator/inbound)
    events_failed: int = 0  # events given up on (no 2xx after every attempt, or no webhook_url)
    webhook_attempts: int = 0  # every POST of an event


@dataclass(frozen=True, slots=True)
class RbmFate:
    status: int  # answer to the create
    events: tuple[str, ...] = ()
    google_status: str = "OK"
    message: str = ""


def fate_for(phone: str, rejection_status: int = 400) -> RbmFate:
    """The fate of a message to ``phone`` from its last two digits (table in the module docstring)."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    pair = int(digits[-2:]) if len(digits) >= 2 else 50
    if pair in (90, 97):
        # 90: SPEC §6's "rejected at submission"; 97 (outside SPEC's table): not RCS-capable but
        # a good number, so a fallback SMS to it is delivered by the SMSC simulator.
        return RbmFate(404, (), "NOT_FOUND", "Requested entity was not found.")
    if pair == 91:
        return RbmFate(400, (), "INVALID_ARGUMENT", "The user's device does not support this message.")
    if pair == 96:
        if rejection_status == 403:
            return RbmFate(403, (), "PERMISSION_DENIED", "The agent is not launched on the user's carrier.")
        return RbmFate(400, (), "INVALID_ARGUMENT", "The user's carrier rejected the message.")
    return RbmFate(
        200,
        {
            92: ("TTL_EXPIRATION_REVOKED",),
            # 98 (outside SPEC's table): as 92, for a good number, so a fallback SMS on the
            # revocation (fallbackSms.afterSeconds) is delivered by the SMSC simulator.
            98: ("TTL_EXPIRATION_REVOKED",),
            93: ("IS_TYPING", "TTL_EXPIRATION_REVOKE_FAILED"),
            94: (),
            95: ("EVENT_TYPE_UNSPECIFIED",),
        }.get(pair, ("DELIVERED", "READ") if pair < 50 else ("DELIVERED",)),
    )


def check_agent_message(body: object) -> str | None:
    """Why ``body`` is not an AgentMessage RBM would take (None if it would)."""
    if not isinstance(body, dict) or not isinstance(body.get("contentMessage"), dict):
        return "contentMessage is required"
    if "ttl" in body and "expireTime" in body:
        return "give ttl or expireTime, not both"
    if "ttl" in body and not (isinstance(body["ttl"], str) and TTL_PATTERN.fullmatch(body["ttl"])):
        return "ttl must be a duration such as '3600s'"
    content = body["contentMessage"]
    kinds = [key for key in ("text", "richCard", "uploadedRbmFile", "contentInfo") if key in content]
    if len(kinds) != 1:
        return "contentMessage needs exactly one of text, richCard, uploadedRbmFile, contentInfo"
    if "text" in content and not (isinstance(content["text"], str) and 0 < len(content["text"]) <= 3072):
        return "text must have 1-3072 characters"
    suggestions = content.get("suggestions", [])
    if "richCard" in content:
        card = content["richCard"].get("standaloneCard", {}) if isinstance(content["richCard"], dict) else {}
        card_content = card.get("cardContent") if isinstance(card, dict) else None
        if not isinstance(card_content, dict) or not card_content.keys() & {"title", "description", "media"}:
            return "richCard.standaloneCard.cardContent needs a title, a description or media"
        media = card_content.get("media", {"height": "MEDIUM", "contentInfo": {"fileUrl": "x"}})
        if media.get("height") not in ("SHORT", "MEDIUM", "TALL") or not media.get("contentInfo", {}).get(
            "fileUrl"
        ):
            return "media needs a height and contentInfo.fileUrl"
        if len(card_content.get("suggestions", [])) > 4:
            return "a card takes at most 4 suggestions"
        suggestions = card_content.get("suggestions", [])
    if not isinstance(suggestions, list) or len(suggestions) > 11:
        return "at most 11 suggestions"
    for suggestion in suggestions:
        inner = (
            (suggestion.get("reply") or suggestion.get("action")) if isinstance(suggestion, dict) else None
        )
        if not isinstance(inner, dict) or len(suggestion) != 1:
            return "a suggestion is exactly one of reply, action"
        if not 0 < len(inner.get("text", "")) <= 25 or len(inner.get("postbackData", "")) > 2048:
            return "a suggestion needs a text of 1-25 characters and postbackData of at most 2048"
        if "action" in suggestion and sum(key in inner for key in _SUGGESTION_ACTIONS) != 1:
            return "an action needs exactly one of " + ", ".join(_SUGGESTION_ACTIONS)
    return None
