"""The in-process cache of verified API keys (api/key_cache.py): bounded, short-lived, positive only."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from partner_gateway.api.key_cache import KEY_CACHE_TTL_SECONDS, ApiKeyCache
from partner_gateway.config import Settings
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.companies import CompanyRepository, hash_api_key
from support import BASE, Partner

URL = f"{BASE}/messages/history"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_ttl_seconds_and_use_does_not_extend_it() -> None:
    clock = Clock()
    cache = ApiKeyCache(ttl=2.0, max_entries=10, clock=clock)
    cache.put("h1", "cmp_a")
    for step in (0.0, 1.0, 1.999):
        clock.now = 1000.0 + step
        assert cache.get("h1") == "cmp_a"
    clock.now = 1002.0
    assert cache.get("h1") is None
    assert len(cache) == 0


def test_a_fresh_verification_starts_a_new_ttl() -> None:
    clock = Clock()
    cache = ApiKeyCache(ttl=2.0, max_entries=10, clock=clock)
    cache.put("h1", "cmp_a")
    clock.now += 1.5
    cache.put("h1", "cmp_a")
    clock.now += 1.5
    assert cache.get("h1") == "cmp_a"


def test_the_cache_is_bounded_and_evicts_the_oldest() -> None:
    clock = Clock()
    cache = ApiKeyCache(ttl=2.0, max_entries=3, clock=clock)
    for i in range(5):
        cache.put(f"h{i}", f"cmp_{i}")
        clock.now += 0.01
    assert len(cache) == 3
    assert [cache.get(f"h{i}") for i in range(5)] == [None, None, "cmp_2", "cmp_3", "cmp_4"]


def test_expired_entries_are_dropped_when_a_key_is_added() -> None:
    clock = Clock()
    cache = ApiKeyCache(ttl=2.0, max_entries=100, clock=clock)
    for i in range(10):
        cache.put(f"old{i}", "cmp_a")
    clock.now += 5
    cache.put("new", "cmp_b")
    assert len(cache) == 1


@pytest.mark.parametrize(("ttl", "max_entries"), [(0.0, 10), (2.0, 0)])
def test_a_zero_ttl_or_size_turns_the_cache_off(ttl: float, max_entries: int) -> None:
    cache = ApiKeyCache(ttl=ttl, max_entries=max_entries)
    cache.put("h1", "cmp_a")
    assert cache.get("h1") is None
    assert len(cache) == 0


def test_each_runtime_holds_one_cache_built_from_its_settings(runtime: Runtime) -> None:
    assert runtime.api_keys is runtime.api_keys
    assert len(runtime.api_keys) == 0
    settings = runtime.settings
    assert (runtime.api_keys.ttl, runtime.api_keys.max_entries) == (
        settings.api_key_cache_seconds,
        settings.api_key_cache_size,
    )
    other = Runtime(settings=settings, database=runtime.database, cursors=runtime.cursors)
    assert other.api_keys is not runtime.api_keys


def test_the_settings_size_the_cache(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_key_cache_seconds=0.5, api_key_cache_size=3)
    cache = ApiKeyCache.from_settings(settings)
    assert (cache.ttl, cache.max_entries) == (0.5, 3)


@pytest.fixture
def key_lookups(runtime: Runtime) -> Iterator[list[str]]:
    """The API-key look-ups the store answers, as they happen."""
    seen: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "api_keys" in statement:
            seen.append(statement)

    engine = runtime.database.reader.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    yield seen
    event.remove(engine, "before_cursor_execute", capture)


async def test_a_verified_key_is_not_looked_up_again_within_the_ttl(
    client: httpx.AsyncClient,
    runtime: Runtime,
    partner: Partner,
    key_lookups: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for _ in range(5):
        assert (await client.get(URL, headers=partner.headers)).status_code == 200
    assert len(key_lookups) == 1
    cache = runtime.api_keys
    assert cache.get(hash_api_key(partner.api_key)) == partner.company_id
    later = cache.clock() + KEY_CACHE_TTL_SECONDS
    monkeypatch.setattr(cache, "clock", lambda: later)
    assert (await client.get(URL, headers=partner.headers)).status_code == 200
    assert len(key_lookups) == 2


async def test_unknown_keys_are_looked_up_every_time_and_never_kept(
    client: httpx.AsyncClient, runtime: Runtime, key_lookups: list[str]
) -> None:
    for i in range(20):
        headers = {"Authorization": f"Bearer pgw_made_up_{i % 4}"}
        assert (await client.get(URL, headers=headers)).status_code == 401
    assert len(key_lookups) == 20
    assert len(runtime.api_keys) == 0


async def test_a_revoked_key_is_accepted_until_its_entry_expires_then_refused(
    client: httpx.AsyncClient, runtime: Runtime, partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    cache = runtime.api_keys
    monkeypatch.setattr(cache, "clock", clock)
    assert (await client.get(URL, headers=partner.headers)).status_code == 200
    async with runtime.database.write() as connection:
        assert await CompanyRepository(connection).revoke_key(partner.api_key_id, now_ms())
    clock.now += KEY_CACHE_TTL_SECONDS - 0.001
    assert (await client.get(URL, headers=partner.headers)).status_code == 200  # documented window
    clock.now += 0.001
    refused = await client.get(URL, headers=partner.headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")


async def test_requests_that_miss_together_share_one_look_up(
    client: httpx.AsyncClient, partner: Partner, key_lookups: list[str]
) -> None:
    """A busy key's entry expiring must not send every request in flight to the store at once."""
    answers = await asyncio.gather(*(client.get(URL, headers=partner.headers) for _ in range(30)))
    assert [answer.status_code for answer in answers] == [200] * 30
    assert len(key_lookups) == 1
    made_up = {"Authorization": "Bearer pgw_made_up"}
    refused = await asyncio.gather(*(client.get(URL, headers=made_up) for _ in range(10)))
    assert [answer.status_code for answer in refused] == [401] * 10
    assert len(key_lookups) == 2  # shared too, and still not kept
