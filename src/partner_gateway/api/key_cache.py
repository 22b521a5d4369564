"""Verified API keys remembered in-process for a short while: bounded, short-lived, positive only.

A key the store accepted is remembered for at most KEY_CACHE_TTL_SECONDS, so most requests spend
no store round trip on it. The price: a key revoked in the store (by the CLI, by another process)
may still be accepted for up to that long in each serving process; after that it is refused.
Entries are never extended by use, only by a fresh look-up in the store. Keys the store refused
are not remembered: a stream of made-up keys costs a look-up each, as before, and cannot grow the
cache. A process holds one cache, `Runtime.api_keys`, built from its settings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from partner_gateway.config import Settings

KEY_CACHE_TTL_SECONDS = 2.0
"""How long a verified key is accepted without asking the store again: the longest a revoked key
is still accepted. 0 turns the cache off."""

KEY_CACHE_MAX_ENTRIES = 10_000
"""Verified keys remembered at once by one process; past that the oldest entry makes room."""


class ApiKeyCache:
    """Keys the store accepted, by their SHA-256, each with its company, for at most `ttl` seconds.

    All entries live equally long and are never refreshed in place, so insertion order is expiry
    order: the oldest entry is both the first to expire and the one evicted when full.
    """

    def __init__(
        self,
        ttl: float = KEY_CACHE_TTL_SECONDS,
        max_entries: int = KEY_CACHE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, tuple[float, str]] = {}
        self._inflight: dict[str, asyncio.Future[str | None]] = {}  # store look-ups under way

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeyCache:
        """The cache `settings` ask for (PARTNER_GATEWAY_API_KEY_CACHE_SECONDS and _SIZE)."""
        return cls(ttl=settings.api_key_cache_seconds, max_entries=settings.api_key_cache_size)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key_hash: str) -> str | None:
        """The company of a key verified less than `ttl` seconds ago, else None."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key_hash]
            return None
        return entry[1]

    def put(self, key_hash: str, company_id: str) -> None:
        """Remember a key the store has just accepted."""
        if self.ttl <= 0 or self.max_entries <= 0:
            return
        entries = self._entries
        now = self.clock()
        entries.pop(key_hash, None)  # re-inserted last, keeping insertion order = expiry order
        while entries:
            oldest = next(iter(entries))
            if entries[oldest][0] > now and len(entries) < self.max_entries:
                break
            del entries[oldest]
        entries[key_hash] = (now + self.ttl, company_id)

    async def look_up(self, key_hash: str, in_store: Callable[[], Awaitable[str | None]]) -> str | None:
        """The company `in_store()` finds for a key the cache does not hold, remembered if found.

        One look-up per key at a time: when a busy key's entry expires, every request in flight
        misses at once; they wait for one read instead of queueing 64 of them on the reader pool
        (measured: that herd, every 2 s, was the single look-up's p99).
        """
        lookup = self._inflight.get(key_hash)
        if lookup is None:
            lookup = asyncio.ensure_future(self._remember(key_hash, in_store))
            self._inflight[key_hash] = lookup
            lookup.add_done_callback(lambda _done: self._inflight.pop(key_hash, None))
        return await asyncio.shield(lookup)

    async def _remember(self, key_hash: str, in_store: Callable[[], Awaitable[str | None]]) -> str | None:
        company_id = await in_store()
        if company_id is not None:
            self.put(key_hash, company_id)
        return company_id

    def clear(self) -> None:
        self._entries.clear()
