"""What a status change keeps: a message's error code only with a failure (docs/error-codes.md).

The precedence rule itself (`decide`) is tested in test_rules.py.
"""

from __future__ import annotations

import pytest

from partner_gateway.domain.lifecycle import kept_error_code
from partner_gateway.domain.statuses import DeliveryStatus

S = DeliveryStatus

KEPT: list[tuple[DeliveryStatus, str | None, str | None]] = [
    # status, reported code, the code the message keeps
    (S.ERROR, "smpp-err:001", "smpp-err:001"),
    (S.EXPIRED, "whatsapp:410", "whatsapp:410"),
    (S.ERROR, None, None),
    (S.EXPIRED, None, None),
    (S.DELIVERED, "smpp-err:001", None),  # e.g. a delivery believed after a failure
    (S.SENT, "x", None),
    (S.RECEIVED, "x", None),
    (S.UNKNOWN, "x", None),  # UNKNOWN never has a code: its description says why
    (S.DELIVERED, None, None),
]


@pytest.mark.parametrize(("status", "reported", "kept"), KEPT)
def test_only_a_failure_keeps_its_error_code(
    status: DeliveryStatus, reported: str | None, kept: str | None
) -> None:
    assert kept_error_code(status, reported) == kept


def test_the_table_covers_every_status() -> None:
    assert {status for status, _, _ in KEPT} == set(S)
