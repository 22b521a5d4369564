"""OPTIONS answers for paths with several operations.

Litestar 2 makes a path's automatic OPTIONS answer with the route of its first handler and keeps
it when more handlers join the path, so `Allow` would list only the first handler's methods
(RFC 9110 §10.2.1: it lists every method the resource supports; schemathesis checks it). A path
served by several handlers declares its OPTIONS answer here instead, registered before the
handlers of its path (api/app.py): a path whose first handler answers OPTIONS gets no automatic one.
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Response, route
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler


def options_for(path: str, methods: Sequence[str]) -> HTTPRouteHandler:
    allow = ", ".join(sorted({*methods, "OPTIONS"}))

    async def options() -> Response[None]:
        return Response(None, status_code=204, headers={"Allow": allow})

    return route(
        path,
        http_method=[HttpMethod.OPTIONS],
        include_in_schema=False,
        status_code=204,
        name=f"options-{path}",
    )(options)
