"""The operators' endpoints, outside the partner API and without a key: `/health` and `/ready`.

`/health` answers 200 while the process runs (liveness: restart it when this fails). `/ready`
answers 200 when the process can do its role's work (partner_gateway/readiness.py: the store;
a worker's broker) and 503 problem details naming each failed check otherwise, so a load
balancer takes the process out of rotation until it can serve again (SPEC §7). A worker process
has no partner API: it answers these on PARTNER_GATEWAY_OPS_PORT when that is set.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get
from litestar.datastructures import State
from litestar.di import Provide

from partner_gateway.api.deps import RuntimeDep
from partner_gateway.api.problems import UNAVAILABLE_RETRY_AFTER_SECONDS, ProblemError, handle_exception
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


OPERATIONS = [health, ready]


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
