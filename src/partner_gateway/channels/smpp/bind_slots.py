"""Bind slots: a carrier's `binds` are a total across every worker of the cluster.

Before a worker opens bind k of carrier C it holds the lease (C, k) in the store. It renews its
leases every third of the lease and closes a bind whose lease it cannot renew in time, so that it
is down before the lease can run out; on a clean stop it closes its binds, then gives the leases
up. A worker that dies (SIGKILL, a lost machine) leaves leases that run out, and another worker
takes those slots over.

Who takes what:

- a worker holding none of a carrier's slots takes the first free one it finds, at once, and
  keeps trying every renewal interval (so a dead worker's slot is picked up);
- a worker already holding one takes another only once it has seen that slot free in two
  consecutive rounds, which gives workers holding none the first chance at it;
- the only worker on its store (the embedded gateway) clears stale leases at start (they can
  only be a dead predecessor's) and takes every slot at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class SlotLeases(Protocol):
    """The leases, shared by every worker (the store implements this: `BindSlotStore`)."""

    async def take(self, carrier: str, slot: int, holder: str, lease_ms: int) -> bool:
        """Take or renew (carrier, slot) for `holder`; True if `holder` holds it now."""

    async def free(self, carrier: str, binds: int) -> set[int]:
        """The slots 1..binds that no live lease holds."""

    async def release(self, carrier: str, holder: str) -> None:
        """Give up every lease `holder` has on `carrier`."""

    async def clear(self, carrier: str) -> None:
        """Forget every lease on `carrier`."""


def new_holder_id() -> str:
    """Unique per process, and says where to look: host-pid-random."""
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class BindLeasing:
    """How a provider shares its carrier's binds with the other workers."""

    leases: SlotLeases
    holder: str
    lease_seconds: float = 30.0
    exclusive: bool = False  # the only worker on this store: stale leases are a dead predecessor's

    @property
    def interval(self) -> float:
        return self.lease_seconds / 3


OpenSlot = Callable[[int], Awaitable[None]]
# (slot, grace seconds for outstanding submits): stops using the bind at once, closes it when awaited
CloseSlot = Callable[[int, float], Coroutine[Any, Any, None]]


class SlotKeeper:
    """Keeps this worker's share of one carrier's slots: `open_slot(k)` once the lease on k is
    taken, `close_slot(k, grace)` when it is lost or on stop."""

    def __init__(
        self, carrier: str, binds: int, leasing: BindLeasing, open_slot: OpenSlot, close_slot: CloseSlot
    ) -> None:
        self._carrier = carrier
        self._binds = binds
        self._leasing = leasing
        self._open_slot = open_slot
        self._close_slot = close_slot
        self._lease_ms = int(leasing.lease_seconds * 1000)
        self._held: dict[int, float] = {}  # slot -> loop time its lease runs out, as far as we know
        self._seen_free: set[int] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Condition()  # notified whenever the set of held slots changes

    async def start(self) -> None:
        """Take a first share now (so a starting worker binds at once), then keep it in the background."""
        if self._leasing.exclusive:
            await self._leasing.leases.clear(self._carrier)
        await self._round_bounded()
        self._task = asyncio.create_task(self._run(), name=f"smpp-bind-slots {self._carrier}")

    async def stop(self) -> None:
        """Close every bind this worker holds, then give the leases up for others to take at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for slot in list(self._held):
            await self._lose(slot, "stopping")
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        try:  # only after the binds are closed: nobody may bind a slot we are still bound on
            async with asyncio.timeout(self._leasing.interval):  # a store that hangs must not hang a stop
                await self._leasing.leases.release(self._carrier, self._leasing.holder)
        except Exception as error:  # the store away as the worker stops: one line, not a traceback
            logger.warning(
                "carrier %s: could not give up bind leases (%s); they run out", self._carrier, _said(error)
            )
            logger.debug("giving up bind leases failed", exc_info=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._leasing.interval)
            await self._round_bounded()

    async def _round_bounded(self) -> None:
        try:
            async with asyncio.timeout(self._leasing.interval):
                await self._round()
        except TimeoutError:  # the store is slow or unreachable: the leases held are checked below
            logger.warning("carrier %s: no answer from the store about bind leases", self._carrier)
        except Exception as error:  # the store away (one line each round); the traceback at DEBUG
            logger.warning(
                "carrier %s: renewing bind leases failed: %s: %s",
                *(
                    self._carrier,
                    type(error).__name__,
                    str(error).splitlines()[0][:200] if str(error) else "",
                ),
            )
            logger.debug("renewing bind leases failed", exc_info=True)
        await self._drop_unrenewed()

    async def _round(self) -> None:
        leases, holder, loop = self._leasing.leases, self._leasing.holder, asyncio.get_running_loop()
        for slot in sorted(self._held):
            asked_at = loop.time()
            if await leases.take(self._carrier, slot, holder, self._lease_ms):
                self._held[slot] = asked_at + self._leasing.lease_seconds
            else:
                await self._lose(slot, "another worker holds it")
        free = await leases.free(self._carrier, self._binds)
        if self._leasing.exclusive or not self._held:
            candidates, limit = free, len(free) if self._leasing.exclusive else 1
        else:
            candidates, limit = free & self._seen_free, len(free)
        self._seen_free = free
        taken = 0
        for slot in random.sample(sorted(candidates), len(candidates)):  # workers collide less
            if taken >= limit:
                break
            asked_at = loop.time()
            if await leases.take(self._carrier, slot, holder, self._lease_ms):
                self._held[slot] = asked_at + self._leasing.lease_seconds
                self._seen_free.discard(slot)
                taken += 1
                logger.info(
                    "carrier %s: bind slot %d of %d taken by %s", self._carrier, slot, self._binds, holder
                )
                await self._open_slot(slot)
                async with self.changed:
                    self.changed.notify_all()

    async def _drop_unrenewed(self) -> None:
        # Renewed every third of the lease: with half of it left, one renewal has failed already.
        # Closing now leaves the bind time to go down before another worker may take the slot.
        now = asyncio.get_running_loop().time()
        for slot, until in list(self._held.items()):
            if until - now <= self._leasing.lease_seconds / 2:
                await self._lose(slot, "its lease could not be renewed")

    async def _lose(self, slot: int, why: str) -> None:
        del self._held[slot]
        logger.info("carrier %s: bind slot %d given up (%s)", self._carrier, slot, why)
        # Closing waits for outstanding answers and an unbind; the leases left must not wait on it.
        grace = self._leasing.lease_seconds / 6
        task = asyncio.create_task(self._close_slot(slot, grace), name=f"smpp-close {self._carrier}#{slot}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        async with self.changed:
            self.changed.notify_all()


def _said(error: BaseException) -> str:
    """An error in one line: its type and the first line of its message."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200]}" if text else type(error).__name__
