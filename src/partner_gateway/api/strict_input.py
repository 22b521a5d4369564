"""What the partner API accepts before any field is looked at: JSON bodies, declared query parameters.

- A body is JSON only when it says so: `Content-Type: application/json` (or another `+json` type,
  charset UTF-8 if one is named). Anything else is 415, whatever the bytes look like.
- A body's shape is bounded (domain/json_bounds.py) on its raw bytes before it is decoded:
  nesting, members of one collection, and a key given twice in one object (a decoder would keep
  the last silently) are all 400 naming the field.
- A query holds only the operation's declared parameters, each once: an unknown name (a typo such
  as `deliverystatus`) or a repeated one (`channel=SMS&channel=RCS`) is 400 naming it, never
  silently ignored or resolved to the last value.

The framework's handlers get these through `StrictRequest` (the app's request class) and
`declared_query_only` (a guard on the partner router); api/front.py asks the same functions
before answering a request itself, and hands anything they refuse to the framework.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Final

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import ParamType
from litestar.exceptions import SerializationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import BodyKwarg, DependencyKwarg, ParameterKwarg
from litestar.types import Empty

from partner_gateway.api.problems import ProblemError, invalid
from partner_gateway.config import Settings
from partner_gateway.domain import json_bounds
from partner_gateway.domain.json_bounds import JsonBounds, JsonOutOfBounds

MAX_JSON_DEPTH: Final = 32
"""Deepest nesting in a partner body; the deepest the API defines (an RCS rich card) is 8."""


def partner_bounds(settings: Settings) -> JsonBounds:
    """The partner API's bounds: the longest list it takes is POST /messages/status/query's ids."""
    return JsonBounds(max_depth=MAX_JSON_DEPTH, max_items=settings.max_query_ids, unique_keys=True)


def is_json_media_type(content_type: str | None) -> bool:
    """`application/json` or `*/*+json`, with no charset or UTF-8 (RFC 8259: JSON is UTF-8)."""
    if not content_type:
        return False
    media_type, *parameters = content_type.split(";")
    kind = media_type.strip().lower()
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def unsupported_media_type(content_type: str | None) -> ProblemError:
    said = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
    return ProblemError(
        415,
        "unsupported-media-type",
        f"The body must be JSON sent with Content-Type: application/json; this request has {said}.",
        title="Unsupported media type",
    )


def check_json_body(body: bytes, content_type: str | None, bounds: JsonBounds) -> None:
    """415 unless a non-empty body is declared JSON; 400 naming the field when its shape is out
    of bounds. An empty body is left to the handler (it answers that a body is required)."""
    if not body:
        return
    if not is_json_media_type(content_type):
        raise unsupported_media_type(content_type)
    try:
        json_bounds.check(body, bounds)
    except JsonOutOfBounds as out:
        raise invalid([(out.field, out.message)]) from None


class StrictRequest(Request[Any, Any, Any]):
    """The framework's request: its JSON body is checked by `check_json_body` before it is decoded."""

    async def json(self) -> Any:
        if self._json is Empty:
            bounds: JsonBounds = self.app.state.json_bounds  # set by api/app.py
            body = await self.body()
            check_json_body(body, self.headers.get("content-type"), bounds)
            try:
                return await super().json()
            except SerializationException:
                _refuse_lone_surrogates(body)
                raise
        return await super().json()


def _refuse_lone_surrogates(body: bytes) -> None:
    """400 naming the field when the body is JSON but a string holds an unpaired surrogate escape
    (`"\\ud83d"` alone), which msgspec refuses as "Input data was truncated"; nothing otherwise."""
    try:
        document = json.loads(body)  # bounded already: no deep recursion
    except ValueError:
        return
    where = _surrogate_field(document, "")
    if where is not None:
        raise invalid(
            [
                (
                    where or "body",
                    "holds an unpaired UTF-16 surrogate escape (\\ud800 to \\udfff): a character "
                    "beyond U+FFFF is escaped as a pair, such as \\ud83d\\ude00",
                )
            ]
        )


def _surrogate_field(value: object, path: str) -> str | None:
    if isinstance(value, str):
        return path if any("\ud800" <= char <= "\udfff" for char in value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _surrogate_field(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _surrogate_field(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def query_problems(pairs: Iterable[tuple[str, str]], declared: Iterable[str]) -> list[tuple[str, str]]:
    """The problems of a query: each name not in `declared`, each name given more than once."""
    known = set(declared)
    seen: dict[str, int] = {}
    for name, _value in pairs:
        seen[name] = seen.get(name, 0) + 1
    choices = ", ".join(sorted(known)) or "none"
    problems = [
        (name, f"is not a parameter of this operation (its parameters: {choices})")
        for name in seen
        if name not in known
    ]
    problems += [
        (name, f"is given {count} times; give it once")
        for name, count in seen.items()
        if count > 1 and name in known
    ]
    return problems


# By the handler's function: guards get a copy of the handler each time (and some handlers cannot
# be weakly referenced); not by id(), which a later app's objects reuse.
_DECLARED: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()


def declared_query_parameters(
    handler: BaseRouteHandler, path_parameters: Mapping[str, Any]
) -> frozenset[str]:
    """The query parameter names a handler declares (its signature's, by their `query` alias),
    remembered per handler function."""
    found = _DECLARED.get(handler.fn)
    if found is None:
        dependencies = handler.resolve_dependencies()
        names = set()
        for name, field in handler.parsed_fn_signature.parameters.items():
            kwarg = field.kwarg_definition
            if (
                name in dependencies
                or name in path_parameters
                or name in _RESERVED
                or isinstance(kwarg, BodyKwarg | DependencyKwarg)
            ):
                continue
            if isinstance(kwarg, ParameterKwarg):
                if kwarg.header or kwarg.cookie or kwarg.param_type is not ParamType.QUERY:
                    continue
                # QueryParameter(name=...) keeps the alias in `name`, Parameter(query=...) in `query`
                names.add(kwarg.query or kwarg.name or name)
            else:
                names.add(name)
        found = _DECLARED[handler.fn] = frozenset(names)
    return found


_RESERVED: Final = frozenset(
    {"data", "request", "headers", "cookies", "query", "scope", "state", "socket", "body"}
)


async def declared_query_only(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A guard: 400 naming every undeclared or repeated query parameter."""
    if not connection.scope["query_string"] or connection.scope.get("method") == "OPTIONS":
        return  # OPTIONS describes the resource, whatever query the operations take
    declared = declared_query_parameters(handler, connection.path_params)
    problems = query_problems(connection.query_params.multi_items(), declared)
    if problems:
        raise invalid(problems)
