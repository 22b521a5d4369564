"""What the store is told about a message's delivery: a provider's report, or the gateway's own.

Both are applied by reports.py; a provider's report may be parked (parked.py) until the part it
names is recorded, or recognise an unanswered hand-over (handovers.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from partner_gateway.domain.statuses import DeliveryStatus


@dataclass(frozen=True, slots=True)
class GatewayReport:
    """A status change the gateway decides itself (submitted, rejected, expired, ...)."""

    status: DeliveryStatus
    description: str
    raw_state: str
    dedup_key: str
    error_code: str | None = None
    queued: bool = False


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """A status the gateway decided for a message, and who it came from (a provider's answer)."""

    message_id: str
    report: GatewayReport
    source: str = "gateway"


@dataclass(frozen=True, slots=True)
class ProviderReport:
    """A provider's report, resolved to a part of a known message."""

    provider: str
    provider_key: str | None
    message_id: str | None
    status: DeliveryStatus | None
    raw_state: str
    description: str
    error_code: str | None
    occurred_at: int
    dedup_key: str
    is_read: bool
    payload: Callable[[], dict[str, Any]]  # the whole report, made only if it has to wait for its submission
    destination: str | None = None  # where the provider says the message went (digits)
    text_excerpt: str | None = None  # how the provider says it began


class ReportOutcome(StrEnum):
    """What became of a provider report (apply_provider_reports' answer for each)."""

    APPLIED = "applied"  # a new timeline entry; the part's and message's status follow the lifecycle
    DUPLICATE = "duplicate"  # the same report stored before (same message and dedup key): nothing changed
    PENDING = "pending"  # no known part: parked, by the provider's id, until its submission is recorded
