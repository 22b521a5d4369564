"""The delivery repository's surface: the queries of the delivery pipeline, by concept.

Every function runs inside the caller's write transaction (see store/batching.py), so a status
change, its timeline entry and the outbox change commit together. The writes every message needs
(record_submissions, apply_gateway_reports, apply_provider_reports, mark_written, finish) take
many messages at once: the group commit runs each once per batch, a few statements for all of
its messages, with the outcome of running them one by one. Their multi-row statements hand the
driver plain tuples (store/bulk.py).

    outbox.py        the work item of each accepted message, from queued to handed over
    parts.py         the parts a provider accepted, with the ids receipts name
    reports.py       applying reports (domain/reports.py): timeline entry, then part and message status
    outcomes.py      what became of each: applied, a duplicate, or parked
    status_batch.py  a batch's status changes: read once (locked), changed in memory, written once
    part_batch.py    the same for the parts the batch's provider reports name
    callback_events.py  each change's callback event (SPEC §5), written with the change
    events.py        the message timeline
    parked.py        provider reports that arrived before their submission was recorded
    handovers.py     unanswered hand-overs, recognised by their receipts
    expiry.py        messages whose validity ended while they waited for a receipt

The rules these apply are the domain's: domain/lifecycle.py, multipart.py, sms_fallback.py and
reconciliation.py. Callers use this surface: `from partner_gateway.store.repositories import
delivery`, then `delivery.claim_due(...)`.
"""

from __future__ import annotations

from partner_gateway.store.repositories.delivery.events import add_note
from partner_gateway.store.repositories.delivery.expiry import lapsed_without_receipt
from partner_gateway.store.repositories.delivery.handovers import remember_unconfirmed
from partner_gateway.store.repositories.delivery.outbox import (
    ClaimedItem,
    OutboxState,
    claim_due,
    claim_published,
    finish,
    hand_back,
    mark_written,
    release_expired_claims,
    release_unheld,
    renew_leases,
    reschedule,
    take_for_publishing,
    unpublish,
)
from partner_gateway.store.repositories.delivery.outcomes import ReportOutcome
from partner_gateway.store.repositories.delivery.parked import (
    ParkedReport,
    expire_parked,
    notice_unmatched,
    parts_by_key,
    take_pending,
    take_pending_with_parts,
)
from partner_gateway.store.repositories.delivery.parts import (
    PartRecord,
    Submission,
    record_parts,
    record_submissions,
)
from partner_gateway.store.repositories.delivery.reports import (
    apply_gateway_report,
    apply_gateway_reports,
    apply_provider_report,
    apply_provider_reports,
)

__all__ = [
    "ClaimedItem",
    "OutboxState",
    "ParkedReport",
    "PartRecord",
    "ReportOutcome",
    "Submission",
    "add_note",
    "apply_gateway_report",
    "apply_gateway_reports",
    "apply_provider_report",
    "apply_provider_reports",
    "claim_due",
    "claim_published",
    "expire_parked",
    "finish",
    "hand_back",
    "lapsed_without_receipt",
    "mark_written",
    "notice_unmatched",
    "parts_by_key",
    "record_parts",
    "record_submissions",
    "release_expired_claims",
    "release_unheld",
    "remember_unconfirmed",
    "renew_leases",
    "reschedule",
    "take_for_publishing",
    "take_pending",
    "take_pending_with_parts",
    "unpublish",
]
