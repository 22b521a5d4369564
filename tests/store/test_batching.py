"""Group commit: writes share a transaction, yet one failing write fails alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.runtime import Runtime
from partner_gateway.store.batching import BulkOperation, WriteBatcher
from partner_gateway.store.outages import store_unavailable
from partner_gateway.store.tables import instance_secrets


@pytest.fixture
async def batcher(runtime: Runtime) -> AsyncIterator[WriteBatcher]:
    started = WriteBatcher(runtime.database)
    started.start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
def run() -> str:
    """instance_secrets outlives a test on PostgreSQL (the session's database keeps it)."""
    return f"batch-{uuid.uuid4().hex[:8]}"


def put(name: str) -> object:
    async def operation(connection: AsyncConnection) -> str:
        await connection.execute(insert(instance_secrets).values(name=name, value="v", created_at=1))
        return name

    return operation


async def stored(runtime: Runtime, run: str) -> set[str]:
    async with runtime.database.read() as connection:
        rows = await connection.execute(
            select(instance_secrets.c.name).where(instance_secrets.c.name.like(f"{run}-%"))
        )
        return {row.name for row in rows}


async def test_writes_submitted_together_commit_together(
    runtime: Runtime, batcher: WriteBatcher, run: str
) -> None:
    names = [f"{run}-{number}" for number in range(50)]
    results = await asyncio.gather(*(batcher.submit(put(name)) for name in names))  # type: ignore[arg-type]
    assert results == names
    assert await stored(runtime, run) == set(names)
    assert batcher.batches < len(names)  # they shared transactions


async def test_a_failing_write_fails_alone_and_the_rest_commit(
    runtime: Runtime, batcher: WriteBatcher, run: str
) -> None:
    await batcher.submit(put(f"{run}-taken"))  # type: ignore[arg-type]
    names = [f"{run}-{number}" for number in range(20)]
    outcomes = await asyncio.gather(
        *(batcher.submit(put(name)) for name in names[:10]),  # type: ignore[arg-type]
        batcher.submit(put(f"{run}-taken")),  # type: ignore[arg-type]
        *(batcher.submit(put(name)) for name in names[10:]),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert isinstance(outcomes[10], IntegrityError)
    assert [outcome for number, outcome in enumerate(outcomes) if number != 10] == names
    assert await stored(runtime, run) == {*names, f"{run}-taken"}


async def test_an_operation_sees_the_writes_of_earlier_ones_in_its_batch(
    runtime: Runtime, batcher: WriteBatcher, run: str
) -> None:
    async def count(connection: AsyncConnection) -> int:
        total = await connection.scalar(
            select(func.count()).select_from(instance_secrets).where(instance_secrets.c.name.like(f"{run}-%"))
        )
        return int(total or 0)

    first, _, seen = await asyncio.gather(
        batcher.submit(put(f"{run}-a")),  # type: ignore[arg-type]
        batcher.submit(put(f"{run}-b")),  # type: ignore[arg-type]
        batcher.submit(count),
    )
    assert first == f"{run}-a"
    assert seen == 2


async def put_many(connection: AsyncConnection, names: Sequence[str]) -> list[str]:
    """A bulk operation: one multi-row INSERT for every name of the batch."""
    await connection.execute(
        insert(instance_secrets), [{"name": n, "value": "v", "created_at": 1} for n in names]
    )
    return [name.upper() for name in names]


PUT_MANY = BulkOperation("put many", put_many)


async def test_bulk_items_submitted_together_run_as_one_call(
    runtime: Runtime, batcher: WriteBatcher, run: str
) -> None:
    calls: list[int] = []

    async def counted(connection: AsyncConnection, names: Sequence[str]) -> list[str]:
        calls.append(len(names))
        return await put_many(connection, names)

    bulk = BulkOperation("counted", counted)
    names = [f"{run}-{number}" for number in range(30)]
    results = await asyncio.gather(*(batcher.submit_bulk(bulk, name) for name in names))
    assert results == [name.upper() for name in names]  # each caller gets its own item's result
    assert await stored(runtime, run) == set(names)
    assert len(calls) < len(names)


async def test_a_failing_bulk_item_fails_alone_and_the_rest_commit(
    runtime: Runtime, batcher: WriteBatcher, run: str
) -> None:
    await batcher.submit(put(f"{run}-taken"))  # type: ignore[arg-type]
    names = [f"{run}-{number}" for number in range(20)]
    outcomes = await asyncio.gather(
        *(batcher.submit_bulk(PUT_MANY, name) for name in names[:10]),
        batcher.submit_bulk(PUT_MANY, f"{run}-taken"),
        batcher.submit(put(f"{run}-single")),  # type: ignore[arg-type]
        *(batcher.submit_bulk(PUT_MANY, name) for name in names[10:]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[10], IntegrityError)
    assert outcomes[11] == f"{run}-single"
    assert [outcome for number, outcome in enumerate(outcomes) if number not in (10, 11)] == [
        name.upper() for name in names
    ]
    assert await stored(runtime, run) == {*names, f"{run}-taken", f"{run}-single"}


async def test_bulk_items_without_a_running_batcher_commit_on_their_own(runtime: Runtime, run: str) -> None:
    assert (
        await WriteBatcher(runtime.database).submit_bulk(PUT_MANY, f"{run}-alone") == f"{run}-alone".upper()
    )
    assert await stored(runtime, run) == {f"{run}-alone"}


async def test_a_connection_lost_mid_batch_fails_every_write_as_unavailable(
    runtime: Runtime, batcher: WriteBatcher, run: str
) -> None:
    """The store going away is no one operation's fault: every write of the batch fails with the
    store's error (callers answer 503 or try again), none with one of SQLAlchemy's own."""

    async def connection_lost(connection: AsyncConnection) -> None:
        await connection.invalidate()  # what SQLAlchemy does on a disconnect error
        raise ConnectionResetError("the server closed the connection")

    results = await asyncio.gather(
        batcher.submit(put(f"{run}-a")), batcher.submit(connection_lost), batcher.submit(put(f"{run}-b")),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(result, Exception) and store_unavailable(result) for result in results), results
    async with runtime.database.read() as connection:
        stored = await connection.scalar(
            select(func.count()).select_from(instance_secrets).where(instance_secrets.c.name.like(f"{run}-%"))
        )
    assert stored == 0
    assert await batcher.submit(put(f"{run}-c")) == f"{run}-c"  # and the next batch commits


async def test_a_lingering_batcher_gathers_writes_submitted_apart_into_one_commit(
    runtime: Runtime, run: str
) -> None:
    """The callback sender process's batcher: writes that come within its linger of the first
    share that first write's transaction; without a linger, each would have committed alone."""
    lingering = WriteBatcher(runtime.database, linger_seconds=0.5)
    lingering.start()
    try:
        names = [f"{run}-{number}" for number in range(5)]

        async def submit_later(index: int, name: str) -> object:
            await asyncio.sleep(0.02 * index)  # one after another, each after the last's start
            return await lingering.submit(put(name))  # type: ignore[arg-type]

        results = await asyncio.gather(*(submit_later(i, name) for i, name in enumerate(names)))
        batches = lingering.batches  # before the stop's own flush
    finally:
        await lingering.stop()
    assert results == names
    assert await stored(runtime, run) == set(names)
    assert batches == 1


async def test_a_hurried_batcher_commits_without_lingering(runtime: Runtime, run: str) -> None:
    """A writer held back until its earlier writes commit (the callback sender at its bound on
    unrecorded answers) hurries the batcher: the batch commits long before its linger ends."""
    lingering = WriteBatcher(runtime.database, linger_seconds=60.0)
    lingering.start()
    try:
        first = asyncio.ensure_future(lingering.submit(put(f"{run}-a")))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert not first.done()  # lingering
        lingering.hurry()
        assert await asyncio.wait_for(first, 10) == f"{run}-a"
        lingering.hurry()  # while nothing waits: the next batch does not linger either
        assert await asyncio.wait_for(lingering.submit(put(f"{run}-b")), 10) == f"{run}-b"  # type: ignore[arg-type]
        third = asyncio.ensure_future(lingering.submit(put(f"{run}-c")))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert not third.done()  # lingering again once hurried through
        lingering.hurry()
        await asyncio.wait_for(third, 10)
    finally:
        await lingering.stop()
    assert await stored(runtime, run) == {f"{run}-a", f"{run}-b", f"{run}-c"}
