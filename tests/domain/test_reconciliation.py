"""The receipt of an unanswered hand-over: a match is taken only when it is the only one."""

from __future__ import annotations

import pytest

from partner_gateway.domain.reconciliation import sole_match


@pytest.mark.parametrize(
    ("candidates", "match"),
    [
        ([], None),
        (["msg_a"], "msg_a"),
        (["msg_a", "msg_b"], None),  # never guessed
        (["msg_a", "msg_b", "msg_c"], None),
    ],
)
def test_sole_match(candidates: list[str], match: str | None) -> None:
    assert sole_match(candidates) == match
