"""The operators' endpoints, outside the partner API and without a key: `/health`, `/ready`, `/metrics`.

`/health` answers 200 while the process runs (liveness: restart it when this fails). `/ready`
answers 200 when the process can do its role's work (partner_gateway/readiness.py: the store;
a worker's broker) and 503 problem details naming each failed check otherwise, so a load
balancer takes the process out of rotation until it can serve again (SPEC §7). A worker process
has no partner API: it answers these on PARTNER_GATEWAY_OPS_PORT when that is set.

`/metrics` serves the process's own Prometheus metrics (observability/metrics.py). It tells
traffic volumes and carrier state, not partners' data, but the API port faces partners, so it
is served only to clients in PARTNER_GATEWAY_METRICS_ALLOWED_NETWORKS (loopback and private
networks by default: the scraper inside the cluster), or, when PARTNER_GATEWAY_METRICS_TOKEN is
set, to whoever sends it as a bearer token (Prometheus' `authorization` setting), and no one else.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide

from partner_gateway.api.deps import RuntimeDep
from partner_gateway.api.problems import (
    UNAVAILABLE_RETRY_AFTER_SECONDS,
    ProblemError,
    handle_exception,
    not_found,
    unauthorized,
)
from partner_gateway.config import Settings
from partner_gateway.observability.scrape import CONTENT_TYPE
from partner_gateway.runtime import Runtime


@get("/health", include_in_schema=False, sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness: the process answers. Also the cheapest endpoint, the benchmarks' ceiling."""
    return {"status": "ok"}


@get("/ready", include_in_schema=False)
async def ready(runtime: RuntimeDep) -> dict[str, Any]:
    """Readiness: every check of the process's role passes, or 503 naming those that fail."""
    problems = await runtime.readiness.problems()
    if problems:
        raise ProblemError(
            503,
            "not-ready",
            "This process cannot do its work now: "
            + "; ".join(f"{name}: {what}" for name, what in problems.items()),
            title="Not ready",
            errors=list(problems.items()),
            headers={"Retry-After": UNAVAILABLE_RETRY_AFTER_SECONDS},
        )
    return {"status": "ready", "checks": {name: "ok" for name in runtime.readiness.names}}


@get("/metrics", include_in_schema=False)
async def metrics(request: Request[Any, Any, Any], runtime: RuntimeDep) -> Response[bytes]:
    """The process's Prometheus metrics, for the operator's scraper only (see the module's docstring)."""
    settings = runtime.settings
    if not settings.metrics_enabled:
        raise not_found("Metrics are turned off here (PARTNER_GATEWAY_METRICS_ENABLED).")
    _allow_scrape(
        settings, request.headers.get("authorization"), request.client.host if request.client else None
    )
    return Response(await runtime.scrape.page(), media_type=CONTENT_TYPE)


def _allow_scrape(settings: Settings, authorization: str | None, client: str | None) -> None:
    token = settings.metrics_token
    if token is not None:
        scheme, _, given = (authorization or "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise unauthorized("Send the metrics token as 'Authorization: Bearer <token>'.")
        return
    try:
        address = ipaddress.ip_address(client or "")
    except ValueError:
        address = None
    if address is None or not any(address in network for network in settings.metrics_networks()):
        raise ProblemError(
            403,
            "metrics-forbidden",
            "Metrics are served to the operator's networks only "
            "(PARTNER_GATEWAY_METRICS_ALLOWED_NETWORKS, or PARTNER_GATEWAY_METRICS_TOKEN).",
            title="Forbidden",
        )


OPERATIONS = [health, ready, metrics]


def operations_app(runtime: Runtime) -> Litestar:
    """The endpoints alone, for a process without the partner API (a worker)."""

    def provide_runtime() -> Runtime:
        return runtime

    return Litestar(
        route_handlers=OPERATIONS,
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        exception_handlers={Exception: handle_exception},
        state=State({"channels": runtime.channels}),
        openapi_config=None,
        logging_config=None,
    )
