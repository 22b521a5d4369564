"""A report about a message's delivery: a provider's receipt or webhook, or the gateway's own decision.

`StatusReport` is the one report type from the channels, through the dispatcher, to the store:
a provider makes one from each receipt or webhook (keeping its own words beside the mapped
status), the dispatcher makes one for each status it decides itself (`provider` "gateway", or
the provider whose answer it records), and the store applies them (the lifecycle rule decides on
`ReportedStatus`, what a report states). A report kept until its submission is recorded is
stored as versioned JSON (`to_payload`, `from_payload`), never pickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from partner_gateway.domain.lifecycle import ReportedStatus
from partner_gateway.domain.statuses import DeliveryStatus

GATEWAY = "gateway"
"""The `provider` of a status the gateway decided on its own (expired, rejected, no receipt, ...)."""
PAYLOAD_VERSION = 1
RECEIPT_TEXT_EXCERPT = 20  # SMPP 3.4 Appendix B: a receipt quotes the first 20 characters


@dataclass(frozen=True, slots=True)
class StatusReport:
    """One report about a message, in the gateway's terms, with the reporter's own words kept.

    A provider's report names the part by the provider's id (`provider_key`) or, when the
    provider echoes ours, the message (`message_id`); the gateway's own names the message.
    """

    provider: str  # who reports: a provider's name, or GATEWAY
    status: DeliveryStatus | None  # None: recorded in the timeline, changes no status
    raw_state: str
    description: str
    occurred_at: int
    dedup_key: str  # the same report delivered twice has the same key
    provider_key: str | None = None  # canonical provider id of the part
    message_id: str | None = None  # when the provider echoes ours; always, for the gateway's
    error_code: str | None = None
    is_read: bool = False
    is_final: bool = False
    queued: bool = False  # the platform's own "still queued" UNKNOWN (a retry is scheduled)
    # The channel gave up on the destination (RBM revoked the message at its ttl): a message that
    # asked for a fallback on that is sent as its fallback SMS instead (dispatch/fallback.py).
    channel_unavailable: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def reported_status(self) -> ReportedStatus | None:
        """What the report states, for the lifecycle rule; None when it changes no status."""
        if self.status is None:
            return None
        return ReportedStatus(
            self.status, self.description, self.error_code, is_read=self.is_read, queued=self.queued
        )

    @property
    def destination(self) -> str | None:
        """Where the provider says the message went, as digits (an SMPP receipt's source_addr)."""
        value = self.details.get("destination")
        return str(value).lstrip("+") if value else None

    @property
    def text_excerpt(self) -> str | None:
        """How the provider says the message began: its first 20 characters, as SMPP receipts
        quote them (matched against an unanswered hand-over, docs/delivery.md)."""
        value = self.details.get("text_excerpt")
        return str(value)[:RECEIPT_TEXT_EXCERPT].strip() or None if value else None


def to_payload(report: StatusReport) -> dict[str, Any]:
    """A report as versioned JSON (kept while it waits for its submission)."""
    data = asdict(report)
    data["status"] = report.status.value if report.status else None
    data["details"] = dict(report.details)
    return {"v": PAYLOAD_VERSION, "report": data}


def from_payload(payload: Mapping[str, Any]) -> StatusReport:
    """The report `to_payload` kept (a payload written before `queued` existed reads as not queued)."""
    if payload.get("v") != PAYLOAD_VERSION:
        raise ValueError(f"unsupported report version {payload.get('v')!r}")
    data = dict(payload["report"])
    data["status"] = DeliveryStatus(data["status"]) if data["status"] else None
    return StatusReport(**data)
