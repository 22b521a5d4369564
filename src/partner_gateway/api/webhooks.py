"""Provider callbacks at /webhooks/<provider>: mounted from what each provider declares.

The API layer knows no provider: it hands the raw body, headers and query to the provider's
handler, which authenticates the call by the provider's own signature and answers. Before that,
and before anything parses the body, its JSON shape is bounded (WEBHOOK_BOUNDS: nesting, members
of one collection): a body outside them is a 400 problem, signed or not. A provider's answer
is sent with its own content type, as given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from litestar import Request, Response, route
from litestar.handlers import HTTPRouteHandler

from partner_gateway.api.problems import invalid
from partner_gateway.channels.base import WebhookRoute
from partner_gateway.domain import json_bounds
from partner_gateway.domain.json_bounds import WEBHOOK_BOUNDS, JsonOutOfBounds

WEBHOOK_MAX_BODY = 4 * 1024 * 1024  # Meta batches up to 3 MB of statuses in one call


def webhook_handlers(routes: Sequence[WebhookRoute]) -> list[HTTPRouteHandler]:
    return [
        route(
            f"/webhooks/{webhook.path}",
            http_method=[webhook.method],
            name=f"webhook-{webhook.path}-{webhook.method.lower()}",
            include_in_schema=False,
            request_max_body_size=WEBHOOK_MAX_BODY,
        )(_endpoint(webhook))
        for webhook in routes
    ]


def _endpoint(webhook: WebhookRoute) -> Callable[[Request[Any, Any, Any]], Awaitable[Response[bytes]]]:
    async def endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await request.body()
        try:
            json_bounds.check(body, WEBHOOK_BOUNDS)
        except JsonOutOfBounds as out:
            raise invalid([(out.field, out.message)]) from None
        headers = {name.lower(): value for name, value in request.headers.items()}
        query = {name: value for name, value in request.query_params.items()}
        status, content, media_type = await webhook.handler(body, headers, query)
        # As a header, not media_type: Litestar appends a charset to a text/* media type, even to
        # one that names its charset already.
        return Response(content, status_code=status, headers={"Content-Type": media_type})

    return endpoint
