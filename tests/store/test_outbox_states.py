"""The outbox states are stored as the strings they always were: the enum needed no migration."""

from __future__ import annotations

from sqlalchemy import String, select

from partner_gateway.domain.statuses import Channel
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.delivery import OutboxState
from partner_gateway.store.tables import outbox
from support import seed

T0 = 1_795_000_000_000


def test_the_stored_values_are_the_ones_before_the_enum() -> None:
    assert {state.value for state in OutboxState} == {"queued", "published", "claimed", "written"}
    assert isinstance(outbox.c.state.type, String)
    assert all(len(state) <= (outbox.c.state.type.length or 0) for state in OutboxState)


def test_a_new_item_is_queued_by_the_column_default() -> None:
    default = outbox.c.state.server_default
    assert default is not None
    assert getattr(default, "arg", None) == OutboxState.QUEUED


async def test_each_state_is_stored_as_its_string(runtime: Runtime) -> None:
    [message_id] = await seed(runtime, "cmp_a", [T0])

    async def stored() -> str:
        async with runtime.database.read() as connection:
            state = (
                await connection.execute(select(outbox.c.state).where(outbox.c.message_id == message_id))
            ).scalar_one()
        assert type(state) is str
        return state

    assert await stored() == "queued"
    async with runtime.database.write() as connection:
        [item] = await delivery.claim_due(connection, T0 + 1_000, 10, 60_000, [Channel.SMS])
    assert await stored() == "claimed"
    async with runtime.database.write() as connection:
        await delivery.mark_written(connection, [item.outbox_id])
    assert await stored() == "written"
    async with runtime.database.write() as connection:
        [ambiguous] = await delivery.release_expired_claims(connection, T0 + 1_000 + 3_600_000)
    assert ambiguous.message_id == message_id
    assert await stored() == "claimed"
    async with runtime.database.write() as connection:
        await delivery.reschedule(connection, item.outbox_id, T0, "a transient error", 0)
        assert await delivery.take_for_publishing(connection, T0 + 2_000, 10, 60_000) == [
            (item.outbox_id, message_id, "SMS", 1)  # taking it back was not an attempt
        ]
    assert await stored() == "published"
    async with runtime.database.write() as connection:
        await delivery.unpublish(connection, [item.outbox_id])
    assert await stored() == "queued"
