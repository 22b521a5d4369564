"""Group commit: many small writes share one transaction and one fsync.

Delivery work is many tiny writes (mark written, record a submission, apply a receipt). With
SQLite at synchronous=FULL each commit costs an fsync; batching them turns thousands of fsyncs a
second into tens, while every caller still waits until its own write is durable.

The hottest writes are also set-based: a `BulkOperation` gathers the items every caller submitted
for one batch and stores them with a few multi-row statements, instead of a few statements each
(what SQLAlchemy's execution path costs per statement, not SQLite, bounded the pipeline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.messages import NewMessage
from partner_gateway.store.commit_hooks import commit_mark, rolled_back_since
from partner_gateway.store.database import Database
from partner_gateway.store.outages import store_unavailable
from partner_gateway.store.repositories.messages import MessageRepository

logger = logging.getLogger(__name__)
T = TypeVar("T")
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
Operation = Callable[[AsyncConnection], Awaitable[Any]]


@dataclass(frozen=True, eq=False)
class BulkOperation(Generic[ItemT, ResultT]):
    """A write many callers submit, run once per batch for all of their items.

    `run(connection, items)` must store the items as if each were stored on its own, in order,
    and return one result per item. When one item fails, the batch is run again with each item
    in its own savepoint (`run` given that item alone), so it fails alone.
    """

    name: str
    run: Callable[[AsyncConnection, Sequence[ItemT]], Awaitable[Sequence[ResultT]]]


async def _store_accepted(connection: AsyncConnection, accepted: Sequence[NewMessage]) -> list[None]:
    await MessageRepository(connection).add_accepted_many(accepted)
    return [None] * len(accepted)


ACCEPT = BulkOperation("accept", _store_accepted)
"""An accepted message with its first event and outbox item: three statements per batch."""


@dataclass(slots=True)
class _Entry:
    bulk: BulkOperation[Any, Any] | None  # None: `payload` is an Operation of its own
    payload: Any
    future: asyncio.Future[Any]


class WriteBatcher:
    def __init__(self, database: Database, *, max_batch: int = 500, linger_seconds: float = 0.0) -> None:
        """`linger_seconds`: how long a batch waits for more once its first write came. No wait
        by default (a caller waits for its own commit); a process whose writers are in no hurry
        (the callback sender process) makes fewer, larger transactions with it."""
        self._database = database
        self._max_batch = max_batch
        self._linger = linger_seconds
        self._queue: asyncio.Queue[_Entry] = asyncio.Queue()
        self._hurry = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.operations = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="write-batcher")

    async def stop(self) -> None:
        """Commit what was submitted, then stop; stopped even if that last commit fails (raised)."""
        if self._task is not None:
            try:
                await self.flush()
            finally:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                self._task = None

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""

        async def nothing(_connection: AsyncConnection) -> None:
            return None

        if self._task is not None:
            done = asyncio.ensure_future(self.submit(nothing))
            self.hurry()  # someone waits: no linger
            await done

    async def submit(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `operation` in a shared write transaction; returns once that has committed.

        One failing operation fails alone (see _commit).
        """
        if self._task is None:
            async with self._database.write() as connection:
                return await operation(connection)
        return await self._enqueue(None, operation)  # type: ignore[no-any-return]

    @property
    def database(self) -> Database:
        return self._database

    async def submit_bulk(self, bulk: BulkOperation[ItemT, ResultT], item: ItemT) -> ResultT:
        """Store `item` with the other items of `bulk` in the same batch; returns its result once
        committed."""
        if self._task is None:
            async with self._database.write() as connection:
                return (await bulk.run(connection, [item]))[0]
        return await self._enqueue(bulk, item)  # type: ignore[no-any-return]

    async def accept(self, message: NewMessage) -> None:
        """Store an accepted message with its first event and outbox item; returns once committed."""
        await self.submit_bulk(ACCEPT, message)

    async def _enqueue(self, bulk: BulkOperation[Any, Any] | None, payload: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Entry(bulk, payload, future))
        return await future

    def hurry(self) -> None:
        """Commit what was submitted without lingering (now, or once the commit under way ends):
        a writer waits for it before it goes on."""
        self._hurry.set()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._linger > 0 and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), self._linger)
            self._hurry.clear()
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[_Entry]) -> None:
        entries = [entry for entry in batch if not entry.future.cancelled()]
        try:
            try:
                # Optimistic: no savepoints (two more statements per operation). Operations
                # rarely fail; when one does, the batch is rolled back and run again isolated.
                results = await self._transaction(entries, isolated=False)
            except _OperationFailed as failed:
                # The store away (connection lost, disk full) is no one operation's fault, and
                # would fail the isolated run too: every caller gets the store's error (503, retry).
                if failed.__cause__ is not None and store_unavailable(failed.__cause__):
                    raise failed.__cause__ from None
                results = await self._transaction(entries, isolated=True)
        except Exception as error:
            logger.warning("group commit of %d operations failed: %s", len(batch), error)
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(error)
            return
        self.batches += 1
        self.operations += len(batch)
        for future, ok, value in results:
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def _transaction(
        self, entries: list[_Entry], *, isolated: bool
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        """One transaction for the batch: each bulk operation's items together (in the order the
        operations first appear), then the other operations in turn. Callers in one batch are
        concurrent, so any order is one they could have had. Isolated: each item or operation in
        its own savepoint, so one failing fails alone; else the first failure raises
        _OperationFailed (rolling back)."""
        bulks: dict[BulkOperation[Any, Any], list[_Entry]] = {}
        singles: list[_Entry] = []
        for entry in entries:
            if entry.bulk is None:
                singles.append(entry)
            else:
                bulks.setdefault(entry.bulk, []).append(entry)
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        async with self._database.write() as connection:
            for bulk, items in bulks.items():
                if not isolated:
                    try:
                        values = await bulk.run(connection, [entry.payload for entry in items])
                    except Exception as error:
                        raise _OperationFailed from error
                    results.extend(
                        (entry.future, True, value) for entry, value in zip(items, values, strict=True)
                    )
                    continue
                results.extend([await _isolated(connection, entry) for entry in items])
            for entry in singles:
                if not isolated:
                    try:
                        results.append((entry.future, True, await entry.payload(connection)))
                    except Exception as error:
                        raise _OperationFailed from error
                    continue
                results.append(await _isolated(connection, entry))
        return results


async def _isolated(connection: AsyncConnection, entry: _Entry) -> tuple[asyncio.Future[Any], bool, Any]:
    """Run one operation, or one item of a bulk operation, in its own savepoint: a failure rolls
    back only its own writes."""
    mark = commit_mark(connection)
    try:
        async with connection.begin_nested():
            if entry.bulk is None:
                value = await entry.payload(connection)
            else:
                value = (await entry.bulk.run(connection, [entry.payload]))[0]
    except Exception as error:
        if connection.invalidated:  # the store went away meanwhile: the batch fails (see _commit)
            raise
        rolled_back_since(connection, mark)
        return entry.future, False, error
    return entry.future, True, value


class _OperationFailed(Exception):
    """An operation of an optimistic (savepoint-free) batch failed: run the batch isolated."""
