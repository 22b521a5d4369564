"""Counts of provider reports that matched nothing of ours, for the operator's metrics.

Plain counters kept by the process, by provider name (a carrier's name for SMPP, `whatsapp`,
`rcs`), read with `snapshot()`; the metrics endpoint exposes them as counters. They are totals since the
process started, never reset:

    foreign        reports for another sender on the same account, ignored at the webhook (a
                   WhatsApp `metadata.phone_number_id`, an RBM `agentId` that is not ours)
    unmatched      parked reports whose id matched no submission of ours within UNMATCHED_AFTER
                   seconds (dispatch/housekeeping.py): receipts of messages someone else sent, or
                   in a notation the carrier settings do not expect
    other_notation of those, reports whose id matches one of our submissions in another notation
                   (hex against decimal): the carrier's `receipt_id_format` is wrong
    expired        parked reports dropped unapplied after PARKED_REPORT_TTL_SECONDS
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

CounterName = Literal["foreign", "unmatched", "other_notation", "expired"]


@dataclass(slots=True)
class ReportCounters:
    foreign: Counter[str] = field(default_factory=Counter)
    unmatched: Counter[str] = field(default_factory=Counter)
    other_notation: Counter[str] = field(default_factory=Counter)
    expired: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[CounterName, dict[str, int]]:
        """Every counter by provider, as plain dicts (a copy: safe to read while they grow)."""
        return {
            "foreign": dict(self.foreign),
            "unmatched": dict(self.unmatched),
            "other_notation": dict(self.other_notation),
            "expired": dict(self.expired),
        }


REPORT_COUNTERS = ReportCounters()
"""The process's counters (one per process, as a metrics registry is)."""


def snapshot() -> dict[CounterName, dict[str, int]]:
    return REPORT_COUNTERS.snapshot()
