"""The partner routes' side of the limits in Litestar: the counting dependency, the headers hook."""

from __future__ import annotations

from typing import Any, cast

from litestar import Request
from litestar.types import Message, Scope

from partner_gateway.api.auth import authenticated_company
from partner_gateway.api.deps import RuntimeDep
from partner_gateway.api.rate_limits.limiter import Headers
from partner_gateway.domain.rate_limits import Traffic

TRAFFIC_OPT = "rate_limit_traffic"
"""A route handler's `opt` key saying what it counts as (default: reads)."""
SCOPE_KEY = "partner_gateway.rate_limit_headers"


async def limited_company(request: Request[Any, Any, Any], runtime: RuntimeDep) -> str:
    """The key's company, once its request is counted (or the 401 or 429 problem)."""
    company_id = await authenticated_company(request, runtime)
    traffic = request.route_handler.opt.get(TRAFFIC_OPT, Traffic.READS)
    headers = runtime.rate_limits.admit(company_id, traffic)
    if headers:
        request.scope[SCOPE_KEY] = headers  # type: ignore[literal-required]
    return company_id


async def add_headers(message: Message, scope: Scope) -> None:
    """Litestar's before_send hook: a counted request's answer carries its RateLimit headers."""
    if message["type"] == "http.response.start":
        headers = cast("Headers | None", scope.get(SCOPE_KEY))
        if headers:
            message["headers"] = [*message["headers"], *headers]
