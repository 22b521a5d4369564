"""An SMS sent in place of an RCS message: how its delivery shows on the RCS original.

When the destination cannot get RCS, the dispatcher sends the message's `fallbackSms` as a new
SMS message linked to the original (the SMS's `fallback_for`). The partner knows the original's
id only, so the original follows the SMS: each report that changes the SMS is passed on to it.
"""

from __future__ import annotations

from partner_gateway.domain.lifecycle import ReportedStatus


def onto_original(
    sms_message_id: str, report: ReportedStatus, *, changed_status: bool, read: bool
) -> ReportedStatus | None:
    """The report the RCS original gets from one its fallback SMS got; None when it gets none.

    Only what changed the SMS is passed on, its status or its read time: a repeat or a lesser
    report the SMS ignored leaves the original as it is too. The status, error code and flags
    are the SMS's report's; the description names the SMS, so the partner can look it up
    ("Sent as SMS msg_…: Delivered to the handset"). The original applies it with the
    lifecycle rule, like any report.
    """
    if not (changed_status or read):
        return None
    return ReportedStatus(
        report.status,
        f"Sent as SMS {sms_message_id}: {report.description}",
        report.error_code,
        is_read=report.is_read,
        queued=report.queued,
    )
