"""Status reads build their items with the caller's builder, and history_page finds the next keyset."""

from __future__ import annotations

import pytest

from partner_gateway.api.schemas import DeliveryStatusResponse
from partner_gateway.api.views import status_item, status_response
from partner_gateway.domain.messages import HistoryFilter, HistoryPosition, MessageStatus
from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.messages import MessageRepository
from support import seed

T0 = 1_795_000_000_000


async def test_a_builder_gets_what_message_status_gets(runtime: Runtime) -> None:
    ids = await seed(runtime, "cmp_a", [T0 + i * 1000 for i in range(5)], status="DELIVERED")
    reads = runtime.database.status_reads
    plain = await reads.many("cmp_a", Channel.SMS, ids, MessageStatus)
    built = await reads.many("cmp_a", Channel.SMS, ids, status_item)
    one = await reads.one("cmp_a", Channel.SMS, ids[0], MessageStatus)
    one_built = await reads.one("cmp_a", Channel.SMS, ids[0], status_item)
    missing = await reads.one("cmp_a", Channel.RCS, ids[0], status_item)
    other_company = await reads.many("cmp_b", Channel.SMS, ids, status_item)
    assert all(isinstance(item, MessageStatus) for item in plain)
    assert all(isinstance(item, DeliveryStatusResponse) for item in built)
    assert built == [status_response(item) for item in plain]
    assert len(plain) == 5
    assert plain[0].status is DeliveryStatus.DELIVERED
    assert plain[0].channel is Channel.SMS
    assert one is not None
    assert one_built == status_response(one)
    assert missing is None
    assert other_company == []
    assert await reads.many("cmp_a", Channel.SMS, [], status_item) == []


@pytest.mark.parametrize("size", [1, 3, 7, 10, 11])
async def test_history_page_matches_history_and_points_at_its_last_item(runtime: Runtime, size: int) -> None:
    await seed(runtime, "cmp_a", [T0 + (i // 2) * 1000 for i in range(10)])  # pairs share a millisecond
    filters = HistoryFilter("cmp_a")
    async with runtime.database.read() as connection:
        repository = MessageRepository(connection)
        everything = await repository.history(filters, None, 100)
        seen: list[MessageStatus] = []
        after: HistoryPosition | None = None
        for _ in range(20):
            page = await repository.history_page(filters, after, size)
            built = await repository.history_page(filters, after, size, status_item)
            assert built.items == [status_response(item) for item in page.items]
            assert built.next_after == page.next_after
            seen.extend(page.items)
            if page.next_after is None:
                break
            last = page.items[-1]
            assert page.next_after == HistoryPosition(last.created_at, last.id)
            assert len(page.items) == size
            after = page.next_after
    assert seen == everything
    assert len(seen) == 10


async def test_history_page_with_status_branches(runtime: Runtime) -> None:
    await seed(runtime, "cmp_a", [T0 + i for i in range(4)], status="DELIVERED")
    await seed(runtime, "cmp_a", [T0 + 10 + i for i in range(4)], status="ERROR")
    filters = HistoryFilter("cmp_a", statuses=(DeliveryStatus.ERROR, DeliveryStatus.DELIVERED))
    async with runtime.database.read() as connection:
        repository = MessageRepository(connection)
        first = await repository.history_page(filters, None, 5)
        assert first.next_after is not None
        rest = await repository.history_page(filters, first.next_after, 5)
    assert [item.created_at for item in first.items + rest.items] == [
        T0 + t for t in (13, 12, 11, 10, 3, 2, 1, 0)
    ]
    assert rest.next_after is None
