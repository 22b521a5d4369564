"""Status webhooks of the Cloud API: the signature check and the statuses as StatusReports. Pure, no I/O.

| WhatsApp status | status    | notes                                                              |
|-----------------|-----------|--------------------------------------------------------------------|
| sent            | RECEIVED  | intermediate: on its way, not yet on the device                    |
| delivered       | DELIVERED | final                                                              |
| read, played    | DELIVERED | is_read (sets readAt); Meta may send it without `delivered` first  |
| failed          | ERROR     | error_code `whatsapp:<errors[0].code>` (`whatsapp:failed` if none) |
| failed, 410     | EXPIRED   | "Message expired": not delivered within its time to live           |
| anything else   | UNKNOWN   | a provider-reported unknown state (SPEC §4; §6 row 95)             |

A status value Meta does not document (older docs and BSPs mention `deleted`, `warning`) is what
SPEC §4 calls a provider-reported unknown state: UNKNOWN, which a later sent, delivered or failed
outranks or replaces. Set `UNKNOWN_STATUS` to None to keep such reports in the timeline only.

WhatsApp has no "expired" status: an expiry comes as `failed` with error 410 "Message expired"
(Meta's error-code list: "Message failed to send during its Time To Live (TTL) duration"; Sinch
documents the same FAILED callback with code 410), hence the EXPIRED row.

Statuses may come out of order, twice, or many in one body; precedence and deduplication (by
`dedup_key` `whatsapp:<wamid>:<status>:<timestamp>`) belong to the lifecycle, not to this module.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final

from partner_gateway.channels.base import StateRule, StatusReport
from partner_gateway.channels.whatsapp.errors import SEND_ERRORS
from partner_gateway.domain.ids import MESSAGE_ID_PREFIX, could_be_message_id
from partner_gateway.domain.inbound import MAX_NUMBER, MAX_TEXT, InboundMessage, display_number
from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.report_counters import REPORT_COUNTERS

logger = logging.getLogger(__name__)

PROVIDER: Final = "whatsapp"
EXPIRED_CODES: Final = frozenset({"410"})
UNKNOWN_STATUS: Final[DeliveryStatus | None] = DeliveryStatus.UNKNOWN  # status values not in STATUS_RULES
MAX_DESCRIPTION: Final = 300  # the store's limits (message_events)
_MAX_RAW_STATE: Final = 100
_MAX_DEDUP_KEY: Final = 200
_MAX_ERROR_CODE: Final = 40
_MAX_MESSAGE_ID: Final = 40


STATUS_RULES: Final[Mapping[str, StateRule]] = MappingProxyType(
    {
        "sent": StateRule(DeliveryStatus.RECEIVED, "Sent by WhatsApp, not yet delivered to the device"),
        "delivered": StateRule(DeliveryStatus.DELIVERED, "Delivered to the device", is_final=True),
        "read": StateRule(DeliveryStatus.DELIVERED, "Read by the recipient", is_read=True, is_final=True),
        "played": StateRule(DeliveryStatus.DELIVERED, "Played by the recipient", is_read=True, is_final=True),
        "failed": StateRule(DeliveryStatus.ERROR, "WhatsApp could not deliver the message", is_final=True),
    }
)


def signature_matches(app_secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` is `sha256=<hex HMAC-SHA256(app_secret, body)>`, compared in constant time.
    `body` must be the raw bytes received: Meta signs its own serialisation, not ours."""
    if not header or not header.isascii() or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.removeprefix("sha256=").strip().lower().encode())


def parse_statuses(document: Mapping[str, Any], phone_number_id: str | None = None) -> list[StatusReport]:
    """Every `entry[].changes[].value.statuses[]` of a webhook body, in order; malformed items skipped.

    With `phone_number_id`, only the statuses of that business number: Meta sends one app's
    webhook the statuses of every number on the business account, and another number's wamids
    are never ours (kept, they would wait in pending_reports for a submission that never comes).
    A change naming no number is kept: nothing says it is not ours."""
    reports: list[StatusReport] = []
    foreign = 0
    for entry in _dicts(document.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            statuses = list(_dicts(value.get("statuses") if isinstance(value, dict) else None))
            if phone_number_id is not None and statuses and _number_of(value) not in (None, phone_number_id):
                foreign += len(statuses)
                continue
            for item in statuses:
                report = status_report(item)
                if report is None:
                    logger.warning("WhatsApp webhook: skipped a status without an id or a status value")
                else:
                    reports.append(report)
    if foreign:
        REPORT_COUNTERS.foreign[PROVIDER] += foreign
        logger.info(
            "WhatsApp webhook: ignored %d statuses of another phone number on the business account "
            "(ours is %s)",
            foreign,
            phone_number_id,
        )
    return reports


def _number_of(value: object) -> str | None:
    """`metadata.phone_number_id` of a change's value, None when it names none."""
    metadata = value.get("metadata") if isinstance(value, dict) else None
    number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    return str(number) if isinstance(number, str | int) and not isinstance(number, bool) else None


def status_report(item: Mapping[str, Any]) -> StatusReport | None:
    """One status object as a StatusReport (None when it has no `id` or `status`)."""
    wamid, raw = item.get("id"), item.get("status")
    if not (isinstance(wamid, str) and wamid and isinstance(raw, str) and raw):
        return None
    stamp = item.get("timestamp")
    stamp_text = str(stamp) if isinstance(stamp, str | int) and not isinstance(stamp, bool) else ""
    unknown = StateRule(UNKNOWN_STATUS, f"WhatsApp reported a status the gateway does not know: {raw}")
    rule = STATUS_RULES.get(raw) or unknown
    errors = item.get("errors")
    error = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = graph_code(error.get("code"))
    status, description, error_code = rule.status, rule.description, None
    if raw == "failed":
        status = DeliveryStatus.EXPIRED if code in EXPIRED_CODES else DeliveryStatus.ERROR
        error_code = f"whatsapp:{code or 'failed'}"[:_MAX_ERROR_CODE]
        description = _failure_description(code, error)
    details: dict[str, Any] = {}
    if isinstance(item.get("recipient_id"), str):
        details["recipient_id"] = item["recipient_id"]
    if error:
        details["error"] = {
            k: error[k] for k in ("code", "title", "message") if isinstance(error.get(k), str | int)
        }
    dedup_key = f"whatsapp:{wamid}:{raw}:{stamp_text}"
    if len(dedup_key) > _MAX_DEDUP_KEY:
        dedup_key = "whatsapp:sha256:" + hashlib.sha256(dedup_key.encode()).hexdigest()
    return StatusReport(
        provider=PROVIDER,
        status=status,
        raw_state=raw[:_MAX_RAW_STATE],
        description=description[:MAX_DESCRIPTION],
        occurred_at=_epoch_ms(stamp_text),
        dedup_key=dedup_key,
        provider_key=wamid,
        message_id=_our_message_id(item.get("biz_opaque_callback_data")),
        error_code=error_code,
        is_read=rule.is_read,
        is_final=rule.is_final,
        details=details,
    )


def graph_code(value: object) -> str | None:
    """A Graph error code (an integer, sometimes sent as a string) as a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isdigit() and len(value) <= 12:
        return str(int(value))
    return None


def _failure_description(code: str | None, error: Mapping[str, Any]) -> str:
    known = SEND_ERRORS.get(int(code)) if code else None
    text = known.text if known else "WhatsApp could not deliver the message"
    data = error.get("error_data")
    parts = (
        error.get("title") or error.get("message"),
        data.get("details") if isinstance(data, dict) else None,
    )
    said = " - ".join(part for part in parts if isinstance(part, str) and part)
    if code or said:
        text += f" (WhatsApp error {code or '?'}{': ' + said if said else ''})"
    return text


def _dicts(value: object) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _epoch_ms(stamp: str) -> int:
    """Meta's `timestamp` (Unix seconds as a string) in epoch ms; now when missing or malformed."""
    return int(stamp) * 1000 if stamp.isdigit() and len(stamp) <= 12 else now_ms()


def _our_message_id(value: object) -> str | None:
    """`biz_opaque_callback_data` when it can be one of our message ids (another app on the same
    business account may put its own data there)."""
    if isinstance(value, str) and value.startswith(MESSAGE_ID_PREFIX) and len(value) <= _MAX_MESSAGE_ID:
        return value if could_be_message_id(value) else None
    return None


# What an inbound message of each type says, when it has no text of its own.
_MEDIA_TYPES: Final = ("image", "video", "document", "audio", "sticker")


def parse_inbound(document: Mapping[str, Any], phone_number_id: str | None = None) -> list[InboundMessage]:
    """Every `entry[].changes[].value.messages[]` (what users sent) as InboundMessages, in order.

    The recipient is the business number's `display_phone_number` (the number an operator
    assigns to a company), else its `phone_number_id`. With `phone_number_id`, another number's
    messages on the business account are skipped, as its statuses are."""
    found: list[InboundMessage] = []
    for entry in _dicts(document.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            items = list(_dicts(value.get("messages") if isinstance(value, dict) else None))
            if not items:
                continue
            number = _number_of(value)
            if phone_number_id is not None and number not in (None, phone_number_id):
                REPORT_COUNTERS.foreign[PROVIDER] += len(items)
                continue
            metadata = value.get("metadata") if isinstance(value, dict) else None
            display = metadata.get("display_phone_number") if isinstance(metadata, dict) else None
            recipient = display if isinstance(display, str) and display else number
            for item in items:
                message = inbound_message(item, recipient)
                if message is None:
                    logger.warning(
                        "WhatsApp webhook: skipped a message without an id, a sender or a recipient"
                    )
                else:
                    found.append(message)
    return found


def inbound_message(item: Mapping[str, Any], recipient: str | None) -> InboundMessage | None:
    wamid, sender, kind = item.get("id"), item.get("from"), item.get("type")
    if not (isinstance(wamid, str) and wamid and isinstance(sender, str) and sender and recipient):
        return None
    kind = kind if isinstance(kind, str) and kind else "unknown"
    stamp = item.get("timestamp")
    stamp_text = str(stamp) if isinstance(stamp, str | int) and not isinstance(stamp, bool) else ""
    return InboundMessage(
        channel=Channel.WHATSAPP,
        provider=PROVIDER,
        sender=display_number(sender)[:MAX_NUMBER],
        recipient=recipient[:MAX_NUMBER],
        text=_inbound_text(item, kind)[:MAX_TEXT],
        kind=kind[:40],
        received_at=_epoch_ms(stamp_text),
        dedup_key=f"whatsapp:{wamid}"[:_MAX_DEDUP_KEY],
        provider_message_id=wamid[:_MAX_DEDUP_KEY],
        raw=[dict(item)],
    )


def _inbound_text(item: Mapping[str, Any], kind: str) -> str:
    """The text, or for other types their caption or a short summary ("[image]")."""
    body = item.get(kind)
    body = body if isinstance(body, dict) else {}
    if kind == "text":
        return _str(body.get("body"))
    if kind in _MEDIA_TYPES:
        return _str(body.get("caption")) or _str(body.get("filename")) or f"[{kind}]"
    if kind == "location":
        where = ", ".join(_str(body.get(key)) for key in ("name", "address") if _str(body.get(key)))
        return f"[location {body.get('latitude')},{body.get('longitude')}]" + (f" {where}" if where else "")
    if kind == "button":
        return _str(body.get("text")) or _str(body.get("payload"))
    if kind == "interactive":
        for reply in ("button_reply", "list_reply", "nfm_reply"):
            chosen = body.get(reply)
            if isinstance(chosen, dict):
                return _str(chosen.get("title")) or _str(chosen.get("id")) or f"[{reply}]"
    if kind == "reaction":
        return _str(body.get("emoji")) or "[reaction removed]"
    return f"[{kind}]"


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
