"""What RBM posts to our webhook, read and checked, and its events in the gateway's terms.

Two kinds of POST arrive (RBM Webhooks guide):

- the setup handshake ``{"clientToken": ..., "secret": ...}``: if the clientToken is ours, the answer is
  ``200`` with the secret as the plain-text body; otherwise 403;
- events, in the Pub/Sub push format ``{"message": {"data": base64(event JSON), "messageId",
  "publishTime"}, "subscription"}``, signed ``X-Goog-Signature: base64(HMAC-SHA512(key=clientToken,
  msg=base64-decoded message.data))``: over the decoded data, not the HTTP body.

Events become reports by :data:`EVENT_TABLE`; the raw ``eventType`` is kept as ``raw_state``:

| eventType | status | note |
|---|---|---|
| ``DELIVERED`` | DELIVERED | UserEvent: on the device |
| ``READ`` | DELIVERED, read | UserEvent: opened by the user (read implies delivered) |
| ``TTL_EXPIRATION_REVOKED`` | EXPIRED | ServerEvent: the ttl ended undelivered and RBM withdrew it (code ``rbm:TTL_EXPIRATION_REVOKED``) |
| ``TTL_EXPIRATION_REVOKE_FAILED`` | RECEIVED | ServerEvent: the ttl ended but RBM could not withdraw it, usually because it is already on its way to the device: an intermediate state (SPEC §4), a DELIVERED may follow |
| ``EVENT_TYPE_UNSPECIFIED`` | UNKNOWN | RBM's own "not specified" value: the provider reported an unknown state (SPEC §4) |
| ``IS_TYPING`` | none (timeline) | carries no messageId as a rule, and is then ignored |
| anything else | none (timeline) | a type this code does not know yet: recorded, changes nothing |

UserMessages (the user wrote to the agent: ``senderPhoneNumber``, no ``eventType``) become inbound
messages (:func:`user_message`), stored for the company the agent is assigned to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from partner_gateway.channels.base import StateRule, StatusReport
from partner_gateway.domain import json_bounds
from partner_gateway.domain.inbound import MAX_NUMBER, MAX_TEXT, InboundMessage, display_number
from partner_gateway.domain.json_bounds import WEBHOOK_BOUNDS, JsonOutOfBounds
from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.report_counters import REPORT_COUNTERS

logger = logging.getLogger(__name__)

PROVIDER_NAME: Final = "rcs"
SIGNATURE_HEADER: Final = "x-goog-signature"
EXPIRED_CODE: Final = "rbm:TTL_EXPIRATION_REVOKED"
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})")


EVENT_TABLE: Final[Mapping[str, StateRule]] = {
    "DELIVERED": StateRule(DeliveryStatus.DELIVERED, "Delivered to the device", is_final=True),
    "READ": StateRule(DeliveryStatus.DELIVERED, "Read by the user", is_final=True, is_read=True),
    "TTL_EXPIRATION_REVOKED": StateRule(
        DeliveryStatus.EXPIRED,
        "Not delivered before its time to live ended; RCS Business Messaging withdrew it",
        is_final=True,
        error_code=EXPIRED_CODE,
        channel_unavailable=True,  # "a good trigger for your fallback" (Google's ServerEvent docs)
    ),
    "TTL_EXPIRATION_REVOKE_FAILED": StateRule(
        DeliveryStatus.RECEIVED,
        "The time to live ended but RCS Business Messaging could not withdraw the message: it is "
        "already on its way to the device; a delivery report may still follow",
    ),
    "EVENT_TYPE_UNSPECIFIED": StateRule(
        DeliveryStatus.UNKNOWN, "RCS Business Messaging reported an unspecified state"
    ),
    "IS_TYPING": StateRule(None, "The user is typing"),
}


class WebhookRejected(Exception):
    """The POST is refused with ``status``; ``reason`` is safe to log and to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Handshake:
    secret: str


@dataclass(frozen=True, slots=True)
class PushedEvent:
    event: Mapping[str, Any]
    pubsub_message_id: str


def sign(client_token: str, data: bytes) -> str:
    """``X-Goog-Signature`` for the decoded ``message.data`` bytes."""
    digest = hmac.new(client_token.encode(), data, hashlib.sha512).digest()
    return base64.b64encode(digest).decode("ascii")


def read_webhook(body: bytes, headers: Mapping[str, str], client_token: str) -> Handshake | PushedEvent:
    """Check and decode one POST; raises WebhookRejected (400 malformed, 401 bad signature, 403 wrong
    handshake token). Nothing in it is trusted before the signature or the token is checked.

    RBM signs the base64-decoded `message.data`, not the HTTP body, so the envelope is read to find
    it: its shape is bounded on the raw bytes first (a linear scan, no recursion), and the event
    inside is parsed only once the signature over its bytes holds."""
    envelope = _json_object(body, "The body")
    if "clientToken" in envelope and "message" not in envelope:
        return _handshake(envelope, client_token)
    signature = {key.lower(): value for key, value in headers.items()}.get(SIGNATURE_HEADER)
    if not signature:
        raise WebhookRejected(401, "X-Goog-Signature is missing")
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise WebhookRejected(400, "message is missing")
    data_text = message.get("data")
    if not isinstance(data_text, str):
        raise WebhookRejected(400, "message.data is missing")
    try:
        data = base64.b64decode(data_text, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRejected(400, "message.data is not base64") from None
    expected = sign(client_token, data).encode()
    if not hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace")):
        raise WebhookRejected(401, "X-Goog-Signature does not match")
    event = _json_object(data, "message.data")
    return PushedEvent(event, str(message.get("messageId") or ""))


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    """`raw` as a JSON object, its shape bounded before it is parsed (WebhookRejected 400 otherwise)."""
    try:
        json_bounds.check(raw, WEBHOOK_BOUNDS)
        document = json.loads(raw)
    except JsonOutOfBounds as out:
        raise WebhookRejected(400, f"{what}: {out}") from None
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise WebhookRejected(400, f"{what} is not a JSON object")
    return document


def _handshake(envelope: Mapping[str, Any], client_token: str) -> Handshake:
    token, secret = envelope.get("clientToken"), envelope.get("secret")
    if not isinstance(token, str) or not isinstance(secret, str):
        raise WebhookRejected(400, "clientToken and secret must be strings")
    if not hmac.compare_digest(token.encode(), client_token.encode()):
        raise WebhookRejected(403, "clientToken does not match")
    return Handshake(secret)


def event_reports(pushed: PushedEvent, agent_id: str | None = None) -> list[StatusReport]:
    """The report an event makes (none for user messages and events naming no message).

    With `agent_id`, none for another agent's event: a Pub/Sub subscription (and so one
    webhook) may serve several agents of a brand, and their message ids are never ours. An
    event naming no agent is kept: nothing says it is not ours."""
    event = pushed.event
    event_type, rbm_id = event.get("eventType"), event.get("messageId")
    if not isinstance(event_type, str) or not isinstance(rbm_id, str) or not rbm_id:
        return []
    named_agent = event.get("agentId")
    if agent_id is not None and isinstance(named_agent, str) and named_agent and named_agent != agent_id:
        REPORT_COUNTERS.foreign[PROVIDER_NAME] += 1
        logger.info(
            "RBM webhook: ignored an event of another agent (%.80s; ours is %s)", named_agent, agent_id
        )
        return []
    rule = EVENT_TABLE.get(event_type) or StateRule(
        None, f"RCS Business Messaging reported an event this gateway does not know: {event_type[:64]}"
    )
    event_id = str(event.get("eventId") or pushed.pubsub_message_id or event.get("sendTime") or "")
    details = {"eventId": event_id, "agentId": str(event.get("agentId") or "")}
    if pushed.pubsub_message_id:
        details["pubsubMessageId"] = pushed.pubsub_message_id
    return [
        StatusReport(
            provider=PROVIDER_NAME,
            status=rule.status,
            raw_state=event_type[:64],
            description=rule.description,
            occurred_at=parse_time_ms(event.get("sendTime")),
            dedup_key=f"rcs:{rbm_id}:{event_type}:{event_id}"[:255],
            provider_key=rbm_id,
            error_code=rule.error_code,
            is_read=rule.is_read,
            is_final=rule.is_final,
            channel_unavailable=rule.channel_unavailable,
            details=details,
        )
    ]


def parse_time_ms(value: object) -> int:
    """An RFC 3339 time (0-9 fraction digits, any offset) as epoch ms; now when absent or malformed."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return now_ms()
    whole, fraction, offset = match.groups()
    try:
        moment = datetime.fromisoformat(whole.upper() + ("+00:00" if offset in "Zz" else offset))
    except ValueError:
        return now_ms()
    return int(moment.timestamp()) * 1000 + int((fraction or "0")[:3].ljust(3, "0"))


def user_message(pushed: PushedEvent, agent_id: str | None = None) -> InboundMessage | None:
    """A UserMessage (the user wrote to the agent: `senderPhoneNumber` and a `messageId`, no
    `eventType`) as an InboundMessage; None for anything else, or another agent's. Its recipient
    is the agent (`agentId`, else ours): what an operator assigns to a company on RCS."""
    event = pushed.event
    sender, rbm_id = event.get("senderPhoneNumber"), event.get("messageId")
    if (
        "eventType" in event
        or not isinstance(sender, str)
        or not sender
        or not isinstance(rbm_id, str)
        or not rbm_id
    ):
        return None
    named = event.get("agentId")
    named = named if isinstance(named, str) and named else None
    if agent_id is not None and named is not None and named != agent_id:
        REPORT_COUNTERS.foreign[PROVIDER_NAME] += 1
        return None
    recipient = named or agent_id
    if recipient is None:
        return None
    kind, text = _user_content(event)
    return InboundMessage(
        channel=Channel.RCS,
        provider=PROVIDER_NAME,
        sender=display_number(sender)[:MAX_NUMBER],
        recipient=recipient[:MAX_NUMBER],
        text=text[:MAX_TEXT],
        kind=kind,
        received_at=parse_time_ms(event.get("sendTime")),
        dedup_key=f"rcs:{rbm_id}"[:200],
        provider_message_id=rbm_id[:200],
        raw=[dict(event)],
    )


def _user_content(event: Mapping[str, Any]) -> tuple[str, str]:
    """(type, text) of a UserMessage: its text, a suggestion's text, a location, a file's name."""
    if isinstance(event.get("text"), str):
        return "text", event["text"]
    reply = event.get("suggestionResponse")
    if isinstance(reply, dict):
        said = reply.get("text") or reply.get("postbackData")
        return "suggestion_response", said if isinstance(said, str) else "[suggestion]"
    where = event.get("location")
    if isinstance(where, dict):
        return "location", f"[location {where.get('latitude')},{where.get('longitude')}]"
    file = event.get("userFile")
    if isinstance(file, dict):
        payload = file.get("payload")
        name = payload.get("fileName") if isinstance(payload, dict) else None
        return "user_file", name if isinstance(name, str) and name else "[file]"
    return "unknown", "[message]"
