"""Bearer API keys: every partner request is scoped to the company its key belongs to.

A key the store accepted is remembered in-process for at most KEY_CACHE_TTL_SECONDS, so most
requests spend no store round trip on it. The price: a key revoked in the store (by the CLI, by
another process) may still be accepted for up to that long in each serving process; after that
it is refused. Entries are never extended by use, only by a fresh look-up in the store.
Keys the store refused are not remembered: a stream of made-up keys costs a look-up each, as
before, and cannot grow the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

from litestar import Request

from partner_gateway.api.deps import RuntimeDep
from partner_gateway.api.problems import unauthorized
from partner_gateway.config import Settings
from partner_gateway.runtime import Runtime
from partner_gateway.store.database import Database
from partner_gateway.store.repositories.companies import CompanyRepository, hash_api_key

MAX_KEY_LENGTH = 200

KEY_CACHE_TTL_SECONDS = 2.0
"""How long a verified key is accepted without asking the store again: the longest a revoked key
is still accepted. 0 turns the cache off."""

KEY_CACHE_MAX_ENTRIES = 10_000
"""Verified keys remembered at once per store; past that the oldest entry makes room."""


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


_caches: WeakKeyDictionary[Database, ApiKeyCache] = WeakKeyDictionary()


def api_key_cache(database: Database, settings: Settings | None = None) -> ApiKeyCache:
    """The verified-key cache of one store: it mirrors that store's keys, so it is per store."""
    cache = _caches.get(database)
    if cache is None:
        if settings is None:
            cache = ApiKeyCache()
        else:
            cache = ApiKeyCache(ttl=settings.api_key_cache_seconds, max_entries=settings.api_key_cache_size)
        _caches[database] = cache
    return cache


async def authenticated_company(request: Request[Any, Any, Any], runtime: RuntimeDep) -> str:
    """The company id of the request's key, or a 401 problem (the framework's dependency)."""
    return await company_for_authorization(request.headers.get("authorization"), runtime)


async def company_for_authorization(header: str | None, runtime: Runtime) -> str:
    """The company id of an `Authorization: Bearer <key>` header's key, or a 401 problem."""
    if not header:
        raise unauthorized("Send your API key as 'Authorization: Bearer <apiKey>'.")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > MAX_KEY_LENGTH:
        raise unauthorized("Send your API key as 'Authorization: Bearer <apiKey>'.")
    key_hash = hash_api_key(key)
    cache = api_key_cache(runtime.database, runtime.settings)
    company_id = cache.get(key_hash)
    if company_id is None:
        company_id = await cache.look_up(key_hash, partial(_company_for_key_hash, runtime, key_hash))
    if company_id is None:
        raise unauthorized("The API key is unknown or revoked.")
    return company_id


async def _company_for_key_hash(runtime: Runtime, key_hash: str) -> str | None:
    async with runtime.database.read() as connection:
        return await CompanyRepository(connection).company_for_key_hash(key_hash)
