"""The delivery repository's surface: what the dispatcher, the report recorder, the API, the CLI
and the benchmarks call, importable from the package as it was from the one module before."""

from __future__ import annotations

from partner_gateway.store.repositories import delivery

USED_BY_CALLERS = {
    # the outbox
    "ClaimedItem", "claim_due", "claim_published", "finish", "mark_written",
    "release_expired_claims", "renew_leases", "reschedule", "take_for_publishing", "unpublish",
    # accepted parts
    "PartRecord", "Submission", "record_parts", "record_submissions",
    # reports
    "ReportOutcome", "apply_gateway_report",
    "apply_gateway_reports", "apply_provider_report", "apply_provider_reports",
    # the timeline, parked reports, unanswered hand-overs, expiry
    "add_note", "take_pending", "take_pending_with_parts", "remember_unconfirmed",
    "lapsed_without_receipt",
}  # fmt: skip


def test_the_surface_callers_use_is_exported() -> None:
    assert set(delivery.__all__) >= USED_BY_CALLERS
    assert all(getattr(delivery, name, None) is not None for name in delivery.__all__)


def test_the_surface_is_explicit() -> None:
    assert len(delivery.__all__) == len(set(delivery.__all__))
    public = {name for name in vars(delivery) if not name.startswith("_")} - {"annotations"}
    submodules = {
        "events",
        "expiry",
        "handovers",
        "outbox",
        "parked",
        "parts",
        "outcomes",
        "reports",
        "status_batch",
        "part_batch",
        "callback_events",
    }
    assert public - submodules == set(delivery.__all__)
