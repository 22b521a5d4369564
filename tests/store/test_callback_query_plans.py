"""The callback queries walk their indexes: the senders' claim, a message's callbacks, the
console's recent failures, replay's window (EXPLAIN on the store itself, as tests/store/test_query_plans.py does)."""

from __future__ import annotations

import pytest
from test_query_plans import Query, plans_of

from partner_gateway.domain.statuses import Channel
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import callback_deliveries

CASES: dict[str, tuple[Query, str]] = {
    "claim": (
        lambda c: callback_deliveries.claim_due(c, 1_795_000_000_000, 200, 60_000),
        "ix_callback_events_due",
    ),
    "message": (
        lambda c: callback_deliveries.message_callbacks(c, "cmp_a", Channel.SMS, "msg_x"),
        "pk_messages|(id=?)",
    ),
    "console failures": (  # the console's callback page: the company's events of 7 days
        lambda c: callback_deliveries.recent_failures(c, "cmp_a", 1_795_000_000_000, 20),
        "ix_callback_events_company",
    ),
}


@pytest.mark.parametrize("case", CASES)
async def test_callback_reads_use_their_index(runtime: Runtime, case: str) -> None:
    query, index = CASES[case]
    plans = await plans_of(runtime, query)
    assert plans
    plan = plans[0]
    if runtime.database.dialect == "sqlite":
        assert any(name in plan for name in index.split("|")), plan
        assert "SCAN callback_events" not in plan.replace("SCAN callback_events USING", ""), plan
    else:
        assert "Seq Scan on callback_events" not in plan, plan
        assert "Index" in plan, plan
