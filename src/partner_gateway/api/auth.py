"""Bearer API keys: every partner request is scoped to the company its key belongs to."""

from __future__ import annotations

from typing import Any

from litestar import Request

from partner_gateway.api.deps import RuntimeDep
from partner_gateway.api.problems import unauthorized
from partner_gateway.store.repositories.companies import CompanyRepository

MAX_KEY_LENGTH = 200


async def authenticated_company(request: Request[Any, Any, Any], runtime: RuntimeDep) -> str:
    """The company id of the request's key, or a 401 problem."""
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized("Send your API key as 'Authorization: Bearer <apiKey>'.")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > MAX_KEY_LENGTH:
        raise unauthorized("Send your API key as 'Authorization: Bearer <apiKey>'.")
    async with runtime.database.read() as connection:
        company_id = await CompanyRepository(connection).company_for_key(key)
    if company_id is None:
        raise unauthorized("The API key is unknown or revoked.")
    return company_id
