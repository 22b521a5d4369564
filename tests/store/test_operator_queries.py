"""The operator's queries across companies: companies and keys, traffic over a window, any message."""

from __future__ import annotations

from sqlalchemy import update

from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.companies import CompanyRepository
from partner_gateway.store.repositories.operator import OperatorQueries
from partner_gateway.store.tables import messages
from support import make_partner, seed

T0 = 1_795_000_000_000


async def test_companies_with_their_keys(runtime: Runtime) -> None:
    acme = await make_partner(runtime, "Acme")
    other = await make_partner(runtime, "Other")
    async with runtime.database.write() as connection:
        keys = CompanyRepository(connection)
        second = await keys.issue_key(acme.company_id, T0)
        assert await keys.revoke_key(second.info.id, T0)
    async with runtime.database.read() as connection:
        listed = await OperatorQueries(connection).companies()
        one = await OperatorQueries(connection).companies(other.company_id)
        none = await OperatorQueries(connection).companies("cmp_nope")
    assert [(c.id, c.name, c.active_keys, c.revoked_keys) for c in listed] == [
        (acme.company_id, "Acme", 1, 1),
        (other.company_id, "Other", 1, 0),
    ]
    assert [c.id for c in one] == [other.company_id]
    assert none == []


async def test_traffic_counts_a_companys_messages_in_the_window_by_channel_and_status(
    runtime: Runtime,
) -> None:
    await seed(runtime, "cmp_a", [T0, T0 + 1, T0 + 2], channel="SMS", status="DELIVERED")
    await seed(runtime, "cmp_a", [T0 + 3], channel="SMS", status="ERROR")
    await seed(runtime, "cmp_a", [T0 + 4], channel="WHATSAPP")
    await seed(runtime, "cmp_a", [T0 - 1, T0 + 10], channel="SMS", status="DELIVERED")  # outside
    await seed(runtime, "cmp_b", [T0 + 5], channel="SMS", status="DELIVERED")  # another company's
    async with runtime.database.read() as connection:
        traffic = await OperatorQueries(connection).traffic("cmp_a", T0, T0 + 10)
    assert traffic.counts == {"SMS": {"DELIVERED": 3, "ERROR": 1}, "WHATSAPP": {"UNKNOWN": 1}}
    assert traffic.total == 5


async def test_a_message_of_any_company_with_its_timeline(runtime: Runtime) -> None:
    [message_id] = await seed(runtime, "cmp_b", [T0], channel="RCS")
    async with runtime.database.write() as connection:
        await delivery.add_note(connection, message_id, "NOTE", "an operator's note", "test:note", T0 + 5)
        await connection.execute(update(messages).where(messages.c.id == message_id).values(status="SENT"))
    async with runtime.database.read() as connection:
        found = await OperatorQueries(connection).message(message_id)
        missing = await OperatorQueries(connection).message("msg_nope")
    assert missing is None
    assert found is not None
    assert (found.company_id, found.status.id, found.status.channel, found.status.status) == (
        "cmp_b",
        message_id,
        Channel.RCS,
        DeliveryStatus.SENT,
    )
    assert [(event.raw_state, event.description) for event in found.events][-1] == (
        "NOTE",
        "an operator's note",
    )
