"""An SMS sent in place of an RCS message: what its RCS original gets from each of its reports."""

from __future__ import annotations

import pytest

from partner_gateway.domain.lifecycle import ReportedStatus
from partner_gateway.domain.sms_fallback import onto_original
from partner_gateway.domain.statuses import DeliveryStatus

S = DeliveryStatus
SMS = "msg_01SMS"


@pytest.mark.parametrize(
    ("changed_status", "read", "passed_on"),
    [
        (True, False, True),
        (False, True, True),  # a read time changes the SMS too
        (True, True, True),
        (False, False, False),  # a repeat or a lesser report: the original is left alone too
    ],
)
def test_only_what_changed_the_sms_is_passed_on(changed_status: bool, read: bool, passed_on: bool) -> None:
    report = ReportedStatus(S.DELIVERED, "Delivered to the handset")
    original = onto_original(SMS, report, changed_status=changed_status, read=read)
    assert (original is not None) is passed_on


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (
            ReportedStatus(S.DELIVERED, "carrier says DELIVRD"),
            ReportedStatus(S.DELIVERED, f"Sent as SMS {SMS}: carrier says DELIVRD"),
        ),
        (
            ReportedStatus(S.ERROR, "Undeliverable", "smpp-err:001"),
            ReportedStatus(S.ERROR, f"Sent as SMS {SMS}: Undeliverable", "smpp-err:001"),
        ),
        (
            ReportedStatus(S.DELIVERED, "Read", is_read=True),
            ReportedStatus(S.DELIVERED, f"Sent as SMS {SMS}: Read", is_read=True),
        ),
        (
            ReportedStatus(S.UNKNOWN, "Queued", queued=True),
            ReportedStatus(S.UNKNOWN, f"Sent as SMS {SMS}: Queued", queued=True),
        ),
    ],
)
def test_the_original_gets_the_sms_report_described_as_the_sms(
    report: ReportedStatus, expected: ReportedStatus
) -> None:
    assert onto_original(SMS, report, changed_status=True, read=False) == expected
