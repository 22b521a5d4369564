"""Bearer API keys: every partner request is scoped to the company its key belongs to.

A key the store accepted is remembered by the process's `Runtime.api_keys` (api/key_cache.py) for
a short while, so most requests spend no store round trip on it; a key revoked in the store may
still be accepted that long in each serving process.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from litestar import Request

from partner_gateway.api.deps import RuntimeDep
from partner_gateway.api.problems import unauthorized
from partner_gateway.observability.context import set_company
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.companies import CompanyRepository, hash_api_key

MAX_KEY_LENGTH = 200


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
    cache = runtime.api_keys
    company_id = cache.get(key_hash)
    if company_id is None:
        company_id = await cache.look_up(key_hash, partial(_company_for_key_hash, runtime, key_hash))
    if company_id is None:
        raise unauthorized("The API key is unknown or revoked.")
    set_company(company_id)  # for the request's log lines
    return company_id


async def _company_for_key_hash(runtime: Runtime, key_hash: str) -> str | None:
    async with runtime.database.read() as connection:
        return await CompanyRepository(connection).company_for_key_hash(key_hash)
