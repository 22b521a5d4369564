"""What became of a report the store was given: applied, a duplicate, or parked (`ReportOutcome`).

The report itself is the domain's `StatusReport` (domain/reports.py), applied by reports.py; a
provider's report may be parked (parked.py) until the part it names is recorded, or recognise an
unanswered hand-over (handovers.py).
"""

from __future__ import annotations

from enum import StrEnum


class ReportOutcome(StrEnum):
    """What became of a provider report (apply_provider_reports' answer for each)."""

    APPLIED = "applied"  # a new timeline entry; the part's and message's status follow the lifecycle
    DUPLICATE = "duplicate"  # the same report stored before (same message and dedup key): nothing changed
    PENDING = "pending"  # no known part: parked, by the provider's id, until its submission is recorded
