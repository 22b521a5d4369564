"""Bearer keys and tenancy (SPEC §2)."""

from __future__ import annotations

import httpx
import pytest

from partner_gateway.api.key_cache import KEY_CACHE_TTL_SECONDS
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.companies import CompanyRepository, hash_api_key
from partner_gateway.store.tables import api_keys
from support import BASE, Partner

ENDPOINTS = [
    ("POST", f"{BASE}/sms/messages"),
    ("POST", f"{BASE}/rcs/messages"),
    ("POST", f"{BASE}/whatsapp/messages"),
    ("GET", f"{BASE}/messages/status/msg_X?channel=SMS"),
    ("GET", f"{BASE}/messages/status?ids=a&channel=SMS"),
    ("POST", f"{BASE}/messages/status/query"),
    ("GET", f"{BASE}/messages/history"),
    ("GET", f"{BASE}/messages/msg_X/events?channel=SMS"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer pgw_unknown", "Bearer " + "x" * 500],
)
async def test_every_endpoint_needs_a_valid_key(
    client: httpx.AsyncClient, method: str, url: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.request(method, url, headers=headers, json={"to": "+4915112345678", "text": "x"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


async def test_keys_are_stored_only_as_hashes(runtime: Runtime, partner: Partner) -> None:
    async with runtime.database.read() as connection:
        rows = (await connection.execute(api_keys.select())).mappings().all()
    assert len(rows) == 1
    assert partner.api_key not in {str(value) for value in rows[0].values()}
    assert rows[0]["key_hash"] == hash_api_key(partner.api_key)


async def test_rotation_and_revocation(
    client: httpx.AsyncClient, runtime: Runtime, partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with runtime.database.write() as connection:
        second = await CompanyRepository(connection).issue_key(partner.company_id, now_ms(), label="rotation")
    url = f"{BASE}/messages/history"
    assert (await client.get(url, headers=partner.headers)).status_code == 200
    assert (await client.get(url, headers={"Authorization": f"Bearer {second.plain_key}"})).status_code == 200
    async with runtime.database.write() as connection:
        assert await CompanyRepository(connection).revoke_key(partner.api_key_id, now_ms())
        assert not await CompanyRepository(connection).revoke_key(partner.api_key_id, now_ms())
    # A verified key is remembered for KEY_CACHE_TTL_SECONDS: its revocation counts once that is over.
    cache = runtime.api_keys
    later = cache.clock() + KEY_CACHE_TTL_SECONDS
    monkeypatch.setattr(cache, "clock", lambda: later)
    assert (await client.get(url, headers=partner.headers)).status_code == 401
    assert (await client.get(url, headers={"Authorization": f"Bearer {second.plain_key}"})).status_code == 200


async def test_scheme_is_case_insensitive(client: httpx.AsyncClient, partner: Partner) -> None:
    response = await client.get(
        f"{BASE}/messages/history", headers={"Authorization": f"bearer {partner.api_key}"}
    )
    assert response.status_code == 200
