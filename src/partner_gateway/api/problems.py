"""RFC 9457 problem details: the one place where any error becomes an HTTP answer.

Every error path ends here: our own errors, the framework's validation, unknown routes, wrong
methods, bodies too large, an unreachable store, and anything unexpected (logged with its
traceback, answered without one). A problem carries the request's id (`requestId`, the
`X-Request-Id` of the answer), so a partner's report of an error finds its log lines.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec

from partner_gateway.channels.registry import CHANNELS, ChannelRegistry
from partner_gateway.errors import IdempotencyConflict, InvalidInput
from partner_gateway.observability.context import current_request_id
from partner_gateway.observability.metrics import problem_answered
from partner_gateway.store.outages import store_unavailable

logger = logging.getLogger(__name__)

PROBLEM_BASE = "https://partner-gateway.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = "1"
UNAVAILABLE_RETRY_AFTER_SECONDS = "5"


class FieldProblem(msgspec.Struct):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None
    request_id: str | None = msgspec.field(default=None, name="requestId")


class ProblemError(Exception):
    """Raise from an endpoint to answer with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        errors: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    def problem(self) -> Problem:
        return Problem(
            type=PROBLEM_BASE + self.slug,
            title=self.title,
            status=self.status,
            detail=self.detail,
            errors=[FieldProblem(f, m) for f, m in self.errors] if self.errors is not None else None,
            request_id=current_request_id(),
        )


def invalid(errors: list[tuple[str, str]]) -> ProblemError:
    return ProblemError(
        400,
        "invalid-request",
        "The request is not valid; see errors for each field.",
        title="Invalid request",
        errors=errors,
    )


def not_found(detail: str) -> ProblemError:
    return ProblemError(404, "not-found", detail, title="Not found")


def unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401,
        "unauthorized",
        detail,
        title="Unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="partner-gateway"'},
    )


def problem_headers(error: ProblemError) -> dict[str, str]:
    """The headers a problem is answered with: its media type, its own, Retry-After on a 5xx."""
    headers = {"Content-Type": PROBLEM_MEDIA_TYPE, **error.headers}
    if error.status >= 500 and "Retry-After" not in headers:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    return headers


def render(error: ProblemError) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode(error.problem()),
        status_code=error.status,
        headers=problem_headers(error),
        media_type=PROBLEM_MEDIA_TYPE,
    )


def _validation_errors(exc: ValidationException, channel_choices: str) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key") or "body")
        message = str(item.get("message") or "is not valid")
        if message.startswith("Missing required"):
            message = "is required"
        key, message = _msgspec_location(key, message)
        if key == "data":
            key = "body"
            if message in ("'data'", "data"):
                message = "a JSON object body is required"
        errors.append((key, message))
    missing = _MISSING_PARAMETER.match(exc.detail or "")
    if not errors and missing:
        field = missing.group(1)
        hint = f"; one of {channel_choices}" if field == "channel" else ""
        errors.append((field, "is required" + hint))
    return errors or [("request", exc.detail or "is not valid")]


_MISSING_PARAMETER = re.compile(r"Missing required \w+ parameter '([^']+)'")
_MISSING_FIELD = re.compile(r"Object missing required field `([^`]+)`")
_AT_PATH = re.compile(r"^(.*) - at `\$((?:\.[^.`\[]+|\[\d+\])*)`$")


def _msgspec_location(key: str, message: str) -> tuple[str, str]:
    """Point msgspec's messages at the field they are about, in the wire's own names."""
    path = ""
    located = _AT_PATH.match(message)
    if located:
        message, path = located.group(1), located.group(2).lstrip(".")
        if key in ("data", "body"):
            key = path or key
    missing = _MISSING_FIELD.fullmatch(message)
    if missing:
        field = missing.group(1)
        return (f"{path}.{field}" if path else field), "is required"
    return key, message


def to_problem(exc: Exception, channel_choices: str = CHANNELS.choices) -> ProblemError:
    """Translate any exception into the problem it is answered with; `channel_choices` names the
    channels served, for a missing channel parameter. Counted by type for /metrics."""
    problem = _to_problem(exc, channel_choices)
    problem_answered(problem.slug)
    return problem


def _to_problem(exc: Exception, channel_choices: str) -> ProblemError:
    match exc:
        case ProblemError():
            return exc
        case InvalidInput():
            return invalid(exc.errors)
        case IdempotencyConflict():
            return ProblemError(
                422,
                "idempotency-key-reused",
                "This Idempotency-Key was used in the last 24 hours for a different request; "
                "use a new key for a new message.",
                title="Idempotency-Key reused",
            )
        case ValidationException():
            return invalid(_validation_errors(exc, channel_choices))
        case NotAuthorizedException():
            return unauthorized(exc.detail)
        case NotFoundException():
            return not_found("No such resource. The API lives under /partner-gateway/v1.")
        case MethodNotAllowedException():
            headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
            return ProblemError(
                405, "method-not-allowed", "This method is not allowed here.", headers=headers
            )
        case ClientException() if exc.status_code == 413:
            return ProblemError(413, "body-too-large", "The request body is too large.")
        case ClientException() if exc.status_code == 400:
            return ProblemError(
                400,
                "malformed-request",
                f"The request could not be read: {exc.detail}",
                title="Malformed request",
            )
        case HTTPException() if exc.status_code < 500:
            return ProblemError(exc.status_code, "client-error", exc.detail)
        case _ if store_unavailable(exc):  # store/outages.py: unreachable, connection lost, disk full
            logger.warning("dependency unavailable: %s", type(exc).__name__)
            return _unavailable()
    logger.exception("unexpected error", exc_info=exc)
    return ProblemError(
        500,
        "internal-error",
        "An unexpected error occurred. It has been logged; retry after a short delay.",
    )


def _unavailable() -> ProblemError:
    return ProblemError(
        503,
        "unavailable",
        "A service the gateway depends on is unavailable; retry after a short delay.",
        headers={"Retry-After": UNAVAILABLE_RETRY_AFTER_SECONDS},
    )


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    channels: ChannelRegistry = request.app.state.channels  # set by api/app.py
    return render(to_problem(exc, channels.choices))


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problems an operation can return, each with an example."""
    return {status: _RESPONSE_SPECS[status] for status in statuses}


def _spec(status: int, slug: str, detail: str, errors: list[FieldProblem] | None = None) -> ResponseSpec:
    example = Problem(
        type=PROBLEM_BASE + slug,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        errors=errors,
    )
    return ResponseSpec(
        data_container=Problem,
        description=HTTPStatus(status).phrase,
        media_type=PROBLEM_MEDIA_TYPE,
        examples=[_example(example)],
    )


def _example(problem: Problem) -> Any:
    from litestar.openapi.spec import Example

    return Example(summary=problem.title, value=msgspec.to_builtins(problem))


_RESPONSE_SPECS: dict[int, ResponseSpec] = {
    400: _spec(
        400,
        "invalid-request",
        "The request is not valid; see errors for each field.",
        [FieldProblem("channel", f"must be one of {CHANNELS.choices}")],
    ),
    401: _spec(401, "unauthorized", "Missing or invalid API key."),
    404: _spec(404, "not-found", "No message with this id on this channel."),
    413: _spec(413, "body-too-large", "The request body is too large."),
    414: _spec(414, "uri-too-long", "The request target is too long; split the batch."),
    422: _spec(422, "idempotency-key-reused", "This Idempotency-Key was used for a different request."),
    429: _spec(
        429,
        "rate-limited",
        "Your company's sends are limited to 100 per second, bursts of 200; retry after 1 s. "
        "Nothing of this request was kept.",
    ),
    500: _spec(500, "internal-error", "An unexpected error occurred; retry after a short delay."),
    503: _spec(503, "unavailable", "A service the gateway depends on is unavailable; retry later."),
}
