"""The partner's RCS request as an RBM ``AgentMessage``, and the id RBM knows a message by.

The partner's fields (SPEC §3.1, camelCase) map to RBM's as follows:

| partner | RBM ``contentMessage`` |
|---|---|
| ``text`` + ``suggestions`` | ``text`` + ``suggestions`` |
| ``{type: reply, text, postbackData}`` | ``{reply: {text, postbackData}}`` |
| ``{type: dial, text, postbackData, phoneNumber}`` | ``{action: {text, postbackData, dialAction: {phoneNumber}}}`` |
| ``{type: openUrl, text, postbackData, url}`` | ``{action: {text, postbackData, openUrlAction: {url}}}`` |
| ``richCard: {title, description, mediaUrl, mediaHeight, suggestions}`` | ``richCard.standaloneCard`` (vertical) ``.cardContent: {title, description, media: {height, contentInfo: {fileUrl}}, suggestions}`` |

A suggestion without ``postbackData`` gets its ``text`` (RBM echoes postback data when it is tapped).
``fallbackSms`` is not RBM's business: the dispatcher sends it as SMS when RCS cannot be had.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

RBM_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:partner-gateway:rbm:agent-message")
MEDIA_HEIGHTS: Final = frozenset({"SHORT", "MEDIUM", "TALL"})


class ContentError(ValueError):
    """The message's content cannot be expressed as an RBM AgentMessage."""


def rbm_message_id(message_id: str) -> str:
    """The ``messageId`` RBM knows our message by.

    RBM requires a UUID (RFC 4122/9562) and ignores a message whose id the agent used before. Ours
    (``msg_`` + a ULID) is not one, so it is mapped to a name-based UUID (version 5): the same message
    always gets the same id, in every process and on every retry, which makes a resend idempotent.
    The mapping is one-way; the id is stored as the part's provider key, which events are matched on.
    """
    return str(uuid.uuid5(RBM_ID_NAMESPACE, message_id))


def agent_message(content: Mapping[str, Any], ttl_seconds: int) -> dict[str, Any]:
    """The AgentMessage body for ``content``, living ``ttl_seconds`` (RBM revokes it after that)."""
    card = content.get("richCard")
    text = content.get("text")
    message: dict[str, Any]
    if card is not None:
        if not isinstance(card, Mapping):
            raise ContentError("richCard must be an object")
        message = {
            "richCard": {"standaloneCard": {"cardOrientation": "VERTICAL", "cardContent": _card(card)}}
        }
    elif isinstance(text, str) and text:
        message = {"text": text}
        suggestions = _suggestions(content.get("suggestions"), "suggestions")
        if suggestions:
            message["suggestions"] = suggestions
    else:
        raise ContentError("an RCS message needs a text or a richCard")
    return {"contentMessage": message, "ttl": f"{max(1, ttl_seconds)}s"}


def _card(card: Mapping[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for field in ("title", "description"):
        value = card.get(field)
        if value is not None:
            if not isinstance(value, str):
                raise ContentError(f"richCard.{field} must be a string")
            content[field] = value
    media_url = card.get("mediaUrl")
    if media_url is not None:
        height = card.get("mediaHeight") or "MEDIUM"
        if not isinstance(media_url, str) or height not in MEDIA_HEIGHTS:
            raise ContentError("richCard.mediaUrl must be a URL and mediaHeight SHORT, MEDIUM or TALL")
        content["media"] = {"height": height, "contentInfo": {"fileUrl": media_url, "forceRefresh": False}}
    if not content:
        raise ContentError("a rich card needs a title, a description or a mediaUrl")
    suggestions = _suggestions(card.get("suggestions"), "richCard.suggestions")
    if suggestions:
        content["suggestions"] = suggestions
    return content


def _suggestions(items: object, field: str) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise ContentError(f"{field} must be a list")
    return [_suggestion(item, f"{field}[{index}]") for index, item in enumerate(items)]


def _suggestion(item: object, field: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise ContentError(f"{field} must be an object")
    kind, text = item.get("type"), item.get("text")
    if not isinstance(text, str) or not text:
        raise ContentError(f"{field}.text is required")
    postback = item.get("postbackData")
    base = {"text": text, "postbackData": postback if isinstance(postback, str) and postback else text}
    if kind == "reply":
        return {"reply": base}
    if kind == "dial":
        number = item.get("phoneNumber")
        if not isinstance(number, str) or not number:
            raise ContentError(f"{field}.phoneNumber is required for a dial suggestion")
        return {"action": {**base, "dialAction": {"phoneNumber": number}}}
    if kind == "openUrl":
        url = item.get("url")
        if not isinstance(url, str) or not url:
            raise ContentError(f"{field}.url is required for an openUrl suggestion")
        return {"action": {**base, "openUrlAction": {"url": url}}}
    raise ContentError(f"{field}.type must be reply, dial or openUrl")
