"""The ASGI entry point: the partner API's hottest route on ASGI itself, everything else in Litestar.

Partners poll one message's status far more than they call anything else. Measured on this
project's machine (docs/performance.md), Litestar's routing, parameter parsing, dependency
injection and response pipeline cost a route about 35 µs more than ASGI itself, a third of what
a whole authenticated look-up costs once the store read runs below SQLAlchemy. So
`GET /partner-gateway/v1/messages/status/{customerMessageId}` is answered here, with the very parts
the framework's handler is made of (the key check, the channel check and the read of
`status_of_one`, the wire shape, the problem documents), and every other request, that path's
unusual forms included (a trailing slash, another method), goes to Litestar unchanged.

Litestar still declares the operation, so the OpenAPI document describes this route and the
schemathesis run checks its answers against it; tests/api/test_front.py checks that the front and
the framework answer the same requests alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from partner_gateway.api.auth import company_for_authorization
from partner_gateway.api.problems import problem_headers, to_problem
from partner_gateway.api.status import status_of_one
from partner_gateway.runtime import Runtime

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
ASGIApp = Callable[..., Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]
_encode = msgspec.json.Encoder().encode


class PartnerApi:
    """Serves the single-status look-up itself and hands every other request to `framework`."""

    def __init__(self, framework: ASGIApp, runtime: Callable[[], Runtime], base_path: str) -> None:
        self.framework = framework
        self._runtime = runtime
        self._status_prefix = f"{base_path}/messages/status/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(self._status_prefix):
                message_id = path[len(self._status_prefix) :]
                if message_id and "/" not in message_id:
                    await self._status_of_one(scope, send, message_id)
                    return
        await self.framework(scope, receive, send)

    async def _status_of_one(self, scope: Scope, send: Send, message_id: str) -> None:
        try:
            runtime = self._runtime()
            company_id = await company_for_authorization(_header(scope, b"authorization"), runtime)
            found = await status_of_one(runtime, company_id, _query_value(scope, "channel"), message_id)
        except Exception as exc:
            problem = to_problem(exc)
            headers = [
                (name.lower().encode(), value.encode()) for name, value in problem_headers(problem).items()
            ]
            await _answer(send, problem.status, headers, _encode(problem.problem()))
            return
        await _answer(send, 200, _JSON_HEADERS, _encode(found))


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header (ASGI servers give names in lower case), as Litestar reads it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _query_value(scope: Scope, name: str) -> str | None:
    """A query parameter's value, percent-decoded, or None when absent; the last one when it is
    repeated, as Litestar reads a single-valued parameter."""
    query: bytes = scope["query_string"]
    found = None
    if query:
        for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if key == name:
                found = value
    return found
