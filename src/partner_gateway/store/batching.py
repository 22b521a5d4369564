"""Group commit: many small writes share one transaction and one fsync.

Delivery work is many tiny writes (mark written, record a submission, apply a receipt). With
SQLite at synchronous=FULL each commit costs an fsync; batching them turns thousands of fsyncs a
second into tens, while every caller still waits until its own write is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.messages import NewMessage
from partner_gateway.store.database import Database
from partner_gateway.store.repositories.messages import MessageRepository

logger = logging.getLogger(__name__)
T = TypeVar("T")
Operation = Callable[[AsyncConnection], Awaitable[Any]]


class WriteBatcher:
    def __init__(self, database: Database, *, max_batch: int = 500) -> None:
        self._database = database
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Operation, asyncio.Future[Any]]] = asyncio.Queue()
        # Accepted messages are the hottest write of all: a batch stores them with three
        # multi-row statements instead of three statements each.
        self._accepts: list[tuple[NewMessage, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.operations = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="write-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            await self.flush()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""

        async def nothing(_connection: AsyncConnection) -> None:
            return None

        if self._task is not None:
            await self.submit(nothing)

    async def submit(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `operation` in a shared write transaction; returns once that has committed.

        Each operation runs in its own savepoint, so one failing operation fails alone.
        """
        if self._task is None:
            async with self._database.write() as connection:
                return await operation(connection)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((operation, future))
        return await future

    async def accept(self, message: NewMessage) -> None:
        """Store an accepted message with its first event and outbox item; returns once committed."""
        if self._task is None:
            async with self._database.write() as connection:
                await MessageRepository(connection).add_accepted(message)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._accepts.append((message, future))
        if len(self._accepts) == 1:
            await self._queue.put((_nothing, asyncio.get_running_loop().create_future()))  # wake the loop
        await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Operation, asyncio.Future[Any]]]) -> None:
        accepts, self._accepts = self._accepts, []
        operations = [(operation, future) for operation, future in batch if not future.cancelled()]
        try:
            try:
                # Optimistic: no savepoints (two more statements per operation). Operations
                # rarely fail; when one does, the batch is rolled back and run again isolated.
                results = await self._transaction(accepts, operations, isolated=False)
            except _OperationFailed:
                results = await self._transaction(accepts, operations, isolated=True)
        except Exception as error:
            logger.warning("group commit of %d operations failed: %s", len(batch) + len(accepts), error)
            for future in [f for _operation, f in batch] + [f for _message, f in accepts]:
                if not future.done():
                    future.set_exception(error)
            return
        self.batches += 1
        self.operations += len(batch) + len(accepts)
        for future, ok, value in results:
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def _transaction(
        self,
        accepts: list[tuple[NewMessage, asyncio.Future[None]]],
        operations: list[tuple[Operation, asyncio.Future[Any]]],
        *,
        isolated: bool,
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        """One transaction for the batch. Isolated: each operation in its own savepoint, so one
        failing fails alone; else the first failure raises _OperationFailed (rolling back)."""
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        async with self._database.write() as connection:
            if accepts:
                await self._store_accepts(connection, accepts, results, isolated=isolated)
            for operation, future in operations:
                if not isolated:
                    try:
                        results.append((future, True, await operation(connection)))
                    except Exception as error:
                        raise _OperationFailed from error
                    continue
                try:
                    async with connection.begin_nested():
                        results.append((future, True, await operation(connection)))
                except Exception as error:
                    results.append((future, False, error))
        return results

    async def _store_accepts(
        self,
        connection: AsyncConnection,
        accepts: list[tuple[NewMessage, asyncio.Future[None]]],
        results: list[tuple[asyncio.Future[Any], bool, Any]],
        *,
        isolated: bool,
    ) -> None:
        messages = MessageRepository(connection)
        if not isolated:
            try:
                await messages.add_accepted_many([message for message, _ in accepts])
            except Exception as error:
                raise _OperationFailed from error
            results.extend((future, True, None) for _, future in accepts)
            return
        for message, future in accepts:
            try:
                async with connection.begin_nested():
                    await messages.add_accepted(message)
                results.append((future, True, None))
            except Exception as error:
                results.append((future, False, error))


class _OperationFailed(Exception):
    """An operation of an optimistic (savepoint-free) batch failed: run the batch isolated."""


async def _nothing(_connection: AsyncConnection) -> None:
    return None
