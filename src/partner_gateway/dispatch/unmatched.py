"""Parked reports nothing claims: told to the operator with their likely cause, then dropped.

A provider report is parked when no part of ours has its id yet (store/.../parked.py); a race with
the submission's record resolves within seconds (ParkedReceipts, every 2 s). One still parked
after UNMATCHED_AFTER_SECONDS names an id we never issued, and stays so. Every WATCH_INTERVAL
seconds this chore looks at those no process has told of yet (marked in the store as it looks,
so several workers tell of each report once between them), by provider:

- it counts them (`report_counters.unmatched`) and logs one warning per provider with the count
  and the likely cause;
- for each, it tries the id in the other notation (hex for a decimal id, decimal for a hex one:
  smpp/receipts.message_id_variants); when that is one of our submissions' ids, the carrier
  writes receipt ids differently from what its `receipt_id_format` setting says, and the
  warning names the receipt, our message and the setting (`report_counters.other_notation`);
- it drops reports parked longer than PARKED_REPORT_TTL_SECONDS (`report_counters.expired`,
  one log line per provider), so the table holds only what may still find its submission.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.channels.smpp.receipts import canonical_message_id, message_id_variants
from partner_gateway.dispatch.housekeeping import repeat
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.report_counters import REPORT_COUNTERS
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.repositories import delivery

logger = logging.getLogger(__name__)

UNMATCHED_AFTER_SECONDS: Final = 60
"""A parked report this old matched nothing in time: a race with its submission lasts seconds."""
PARKED_REPORT_TTL_SECONDS: Final = 3600
"""A parked report is dropped unapplied after an hour (docs/delivery.md)."""
WATCH_INTERVAL: Final = 30.0
PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class OtherNotation:
    """A parked report whose id is one of our submissions' ids written in another notation."""

    provider: str
    receipt_key: str
    our_key: str
    message_id: str


@dataclass(slots=True)
class Findings:
    """What one pass found: unmatched reports by provider, those matching in another notation,
    and the reports dropped by provider."""

    unmatched: dict[str, int] = field(default_factory=dict)
    other_notation: list[OtherNotation] = field(default_factory=list)
    expired: dict[str, int] = field(default_factory=dict)


def other_notations(key: str) -> list[str]:
    """The key's hex and decimal readings, canonical, other than the key itself."""
    return [form for form in message_id_variants(key) if canonical_message_id(form) == form != key]


class UnmatchedReports:
    """The chore: see the module's docstring."""

    def __init__(self, batcher: WriteBatcher) -> None:
        self._batcher = batcher

    async def run(self) -> None:
        await repeat(self.check_once, WATCH_INTERVAL, "looking at unmatched parked reports failed; retrying")

    async def check_once(self, now: int | None = None) -> Findings:
        """One pass: every unmatched report not seen yet looked at, the expired ones dropped."""
        moment = now if now is not None else now_ms()
        findings = Findings()
        unmatched: defaultdict[str, int] = defaultdict(int)
        while True:
            page, notations = await self._batcher.submit(lambda connection: self._look(connection, moment))
            for report in page:
                unmatched[report.provider] += 1
            findings.other_notation += notations
            if len(page) < PAGE:
                break
        findings.unmatched = dict(unmatched)
        expired: defaultdict[str, int] = defaultdict(int)
        while True:
            dropped = await self._batcher.submit(
                lambda connection: delivery.expire_parked(
                    connection, moment - PARKED_REPORT_TTL_SECONDS * 1000, PAGE
                )
            )
            for report in dropped:
                expired[report.provider] += 1
            if len(dropped) < PAGE:
                break
        findings.expired = dict(expired)
        _tell(findings)
        return findings

    async def _look(
        self, connection: AsyncConnection, now: int
    ) -> tuple[list[delivery.ParkedReport], list[OtherNotation]]:
        page = await delivery.notice_unmatched(connection, now - UNMATCHED_AFTER_SECONDS * 1000, PAGE, now)
        by_provider: defaultdict[str, dict[str, str]] = defaultdict(dict)  # provider: {other form: key}
        for report in page:
            for form in other_notations(report.provider_key):
                by_provider[report.provider][form] = report.provider_key
        notations = []
        for provider, forms in by_provider.items():
            for our_key, message_id in (
                await delivery.parts_by_key(connection, provider, list(forms))
            ).items():
                notations.append(OtherNotation(provider, forms[our_key], our_key, message_id))
        return page, notations


def _tell(findings: Findings) -> None:
    """The log lines and counters of one pass."""
    notation_counts: defaultdict[str, int] = defaultdict(int)
    for found in findings.other_notation:
        notation_counts[found.provider] += 1
        REPORT_COUNTERS.other_notation[found.provider] += 1
        logger.warning(
            "%s: the receipt id %s matches our message %s only read as %s (our record: %s); the "
            "carrier writes receipt ids in another notation than its receipt_id_format setting says",
            found.provider,
            found.receipt_key,
            found.message_id,
            "hex" if _is_decimal(found.our_key) else "decimal",
            found.our_key,
        )
    for provider, count in findings.unmatched.items():
        REPORT_COUNTERS.unmatched[provider] += count
        notations = notation_counts.get(provider, 0)
        cause = (
            f"{notations} of them match our submissions in another notation (hex against decimal): "
            "correct the carrier's receipt_id_format"
            if notations
            else "they are for messages this gateway did not send (another client on the same "
            "account, number or agent), or the provider rewrites ids"
        )
        logger.warning(
            "%s: %d reports matched no message of ours for over %d s; likely cause: %s",
            provider,
            count,
            UNMATCHED_AFTER_SECONDS,
            cause,
        )
    for provider, count in findings.expired.items():
        REPORT_COUNTERS.expired[provider] += count
        logger.warning(
            "%s: dropped %d parked reports unapplied after %d s: no submission of ours has their ids",
            provider,
            count,
            PARKED_REPORT_TTL_SECONDS,
        )


def _is_decimal(key: str) -> bool:
    return key.isascii() and key.isdigit()
