"""What `after_commit` registers runs once the transaction commits, never when it (or the
savepoint it was registered in) rolls back: metrics count only what was stored."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.runtime import Runtime
from partner_gateway.store.commit_hooks import after_commit, commit_mark, rolled_back_since, write_last


async def test_runs_after_the_commit_and_not_after_a_rollback(runtime: Runtime) -> None:
    ran: list[str] = []
    async with runtime.database.write() as connection:
        await connection.execute(text("SELECT 1"))
        after_commit(connection, lambda: ran.append("committed"))
        assert ran == []  # not before the commit
    assert ran == ["committed"]

    async def failing() -> None:
        async with runtime.database.write() as connection:
            after_commit(connection, lambda: ran.append("rolled back"))
            raise RuntimeError("the transaction fails")

    with pytest.raises(RuntimeError):
        await failing()
    assert ran == ["committed"]

    async with runtime.database.write() as connection:  # a failed one leaves nothing behind
        pass
    assert ran == ["committed"]


async def test_a_rolled_back_savepoint_drops_its_own_only(runtime: Runtime) -> None:
    ran: list[str] = []
    async with runtime.database.write() as connection:
        after_commit(connection, lambda: ran.append("outer"))
        mark = commit_mark(connection)
        try:
            async with connection.begin_nested():
                after_commit(connection, lambda: ran.append("savepoint"))
                raise RuntimeError("the savepoint fails")
        except RuntimeError:
            rolled_back_since(connection, mark)
    assert ran == ["outer"]


async def test_outside_a_write_transaction_it_is_dropped(runtime: Runtime) -> None:
    ran: list[str] = []
    async with runtime.database.read() as connection:
        after_commit(connection, lambda: ran.append("read"))
    assert ran == []


async def test_a_failing_callback_does_not_fail_the_committed_write(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("a bug in what follows")

    async with runtime.database.write() as connection:
        after_commit(connection, broken)
        after_commit(connection, lambda: ran.append("next"))
    assert ran == ["next"]
    assert "after-commit work failed" in caplog.text


async def test_a_connection_lost_mid_transaction_fails_with_the_stores_own_error(runtime: Runtime) -> None:
    """SQLAlchemy invalidates a connection whose server went away (PostgreSQL restarted, the
    network cut); reading its `info` then raises PendingRollbackError, which says nothing of the
    outage: the write must fail with the error that says the store is unavailable (a 503, a retry)."""
    ran: list[str] = []

    async def lost() -> None:
        async with runtime.database.write() as connection:
            after_commit(connection, lambda: ran.append("lost"))
            await connection.invalidate()  # what SQLAlchemy does on a disconnect error
            mark = commit_mark(connection)
            rolled_back_since(connection, mark)
            after_commit(connection, lambda: ran.append("after the loss"))
            raise ConnectionResetError("the server closed the connection")

    with pytest.raises(ConnectionResetError):
        await lost()
    assert ran == []
    async with runtime.database.write() as connection:  # the pool gives a new connection
        await connection.execute(text("SELECT 1"))


async def test_last_writes_run_once_with_every_item_just_before_the_commit(runtime: Runtime) -> None:
    """`write_last`: the items of a transaction reach their write together, after its other
    statements and before its commit (the write's rows are in the committed transaction)."""
    calls: list[list[int]] = []

    async def write(connection: AsyncConnection, items: list[int]) -> None:
        calls.append(list(items))
        await connection.execute(text("CREATE TABLE written_last (n INTEGER)"))

    async with runtime.database.write() as connection:
        assert write_last(connection, write, 1)
        await connection.execute(text("SELECT 1"))
        assert write_last(connection, write, 2)
        assert calls == []  # not yet: the transaction's own statements come first
    assert calls == [[1, 2]]
    async with runtime.database.read() as connection:  # committed with the transaction
        assert (await connection.execute(text("SELECT count(*) FROM written_last"))).scalar_one() == 0

    async def failing() -> None:
        async with runtime.database.write() as connection:
            write_last(connection, write, 3)
            raise RuntimeError("the transaction fails")

    with pytest.raises(RuntimeError):
        await failing()
    assert calls == [[1, 2]]
    async with runtime.database.read() as connection:
        assert not write_last(connection, write, 4)  # outside a write: the caller writes itself


async def test_a_rolled_back_savepoint_drops_its_last_writes(runtime: Runtime) -> None:
    calls: list[list[str]] = []

    async def write(_connection: AsyncConnection, items: list[str]) -> None:
        calls.append(list(items))

    async with runtime.database.write() as connection:
        write_last(connection, write, "outer")
        mark = commit_mark(connection)
        try:
            async with connection.begin_nested():
                write_last(connection, write, "savepoint")
                raise RuntimeError("the savepoint fails")
        except RuntimeError:
            rolled_back_since(connection, mark)
        write_last(connection, write, "after")
    assert calls == [["outer", "after"]]
