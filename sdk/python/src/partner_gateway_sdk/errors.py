"""The SDK's exceptions. Every one is a `PartnerGatewayError`:

    PartnerGatewayError
    ├── APIConnectionError          no answer: refused, reset, DNS (after the retries)
    │   └── APITimeoutError         no answer within the timeout
    ├── APIStatusError              an answer with a 4xx or 5xx status, from its problem document
    │   ├── ClientError             4xx: fix the request (429 aside)
    │   │   ├── BadRequestError             400 invalid-request, malformed-request (see `errors`)
    │   │   ├── AuthenticationError         401
    │   │   ├── PermissionDeniedError       403
    │   │   ├── NotFoundError               404
    │   │   ├── ConflictError               409
    │   │   ├── ContentTooLargeError        413
    │   │   ├── URITooLongError             414
    │   │   ├── UnsupportedMediaTypeError   415
    │   │   ├── UnprocessableEntityError    422
    │   │   │   └── IdempotencyKeyReusedError   422 idempotency-key-reused
    │   │   └── RateLimitError              429 (with `retry_after`)
    │   └── ServerError             5xx: retried, then raised
    │       ├── InternalServerError         500
    │       └── ServiceUnavailableError     503
    ├── UnexpectedResponseError     a success answer this SDK cannot read (not the gateway's JSON)
    └── InvalidSignatureError       a callback whose signature or timestamp does not hold (also a ValueError)

httpx's exceptions are translated here and nowhere else (`_transport_error`), so callers never
need to import httpx to handle a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

PROBLEM_BASE = "https://partner-gateway.dev/problems/"


class PartnerGatewayError(Exception):
    """The base of every error this SDK raises."""


class APIConnectionError(PartnerGatewayError):
    """The request got no answer (after the retries): the cause is in `__cause__`."""


class APITimeoutError(APIConnectionError):
    """The request got no answer within the client's timeout."""


class UnexpectedResponseError(PartnerGatewayError):
    """A success answer that is not what the gateway answers (a proxy's page, a cut body)."""

    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(message)
        self.status = response.status_code
        self.headers = dict(response.headers)
        self.body = response.text


class InvalidSignatureError(PartnerGatewayError, ValueError):
    """A callback's signature header is missing or malformed, stale or in the future, or matches
    none of the secrets: answer the request with 400 or 401 and do not act on it."""


@dataclass(frozen=True)
class FieldError:
    """One entry of a problem's `errors`: the field (a JSON path or parameter name) and what is wrong."""

    field: str
    message: str


class APIStatusError(PartnerGatewayError):
    """An error answer, from its RFC 9457 problem document (or from the status alone when the
    answer was not one, as a proxy's HTML 502 is not)."""

    def __init__(
        self,
        *,
        status: int,
        type: str,
        title: str,
        detail: str | None,
        errors: list[FieldError],
        request_id: str | None,
        headers: Mapping[str, str],
        body: Any,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.errors = errors
        self.request_id = request_id
        self.headers = dict(headers)
        self.body = body
        super().__init__(self._message())

    @property
    def problem(self) -> str:
        """The type's last segment (`invalid-request`, `rate-limited`, ...), or the whole type
        when it is not one of the gateway's."""
        return self.type.removeprefix(PROBLEM_BASE)

    def _message(self) -> str:
        text = f"{self.status} {self.title}"
        if self.detail:
            text += f": {self.detail}"
        if self.errors:
            text += " (" + "; ".join(f"{error.field}: {error.message}" for error in self.errors) + ")"
        if self.request_id:
            text += f" [request {self.request_id}]"
        return text


class ClientError(APIStatusError):
    """A 4xx answer."""


class BadRequestError(ClientError):
    """400: a parameter or field breaks a rule; `errors` names each one."""


class AuthenticationError(ClientError):
    """401: no key, or an unknown or revoked one."""


class PermissionDeniedError(ClientError):
    """403."""


class NotFoundError(ClientError):
    """404: no such message of yours on this channel (another company's reads the same)."""


class ConflictError(ClientError):
    """409."""


class ContentTooLargeError(ClientError):
    """413: the body is over the gateway's limit (1 MiB)."""


class URITooLongError(ClientError):
    """414: the request target is over the gateway's limit."""


class UnsupportedMediaTypeError(ClientError):
    """415."""


class UnprocessableEntityError(ClientError):
    """422."""


class IdempotencyKeyReusedError(UnprocessableEntityError):
    """422 idempotency-key-reused: the key was used within 24 hours with another body."""


class RateLimitError(ClientError):
    """429: the company's sends or reads are over their limit; nothing of the request was kept."""

    @property
    def retry_after(self) -> float | None:
        """The seconds the gateway asked to wait, when it said."""
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(APIStatusError):
    """A 5xx answer."""


class InternalServerError(ServerError):
    """500: a bug on the gateway's side (logged there under `request_id`)."""


class ServiceUnavailableError(ServerError):
    """503: a dependency of the gateway (its database) is unreachable."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: ContentTooLargeError,
    414: URITooLongError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    500: InternalServerError,
    503: ServiceUnavailableError,
}


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The typed exception of an error answer (its body already read)."""
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    problem: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    status = response.status_code
    type_ = _text(problem.get("type")) or "about:blank"
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ClientError)
    if status == 422 and type_ == PROBLEM_BASE + "idempotency-key-reused":
        cls = IdempotencyKeyReusedError
    errors = [
        FieldError(str(item.get("field", "")), str(item.get("message", "")))
        for item in problem.get("errors") or []
        if isinstance(item, Mapping)
    ]
    return cls(
        status=status,
        type=type_,
        title=_text(problem.get("title")) or response.reason_phrase or f"HTTP {status}",
        detail=_text(problem.get("detail")),
        errors=errors,
        request_id=_text(problem.get("requestId")) or response.headers.get("x-request-id"),
        headers=response.headers,
        body=body,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def transport_error(error: httpx.TransportError) -> APIConnectionError:
    """httpx's failure as ours (raised `from` it, so the cause stays visible)."""
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(f"no answer within the timeout: {error!r}")
    return APIConnectionError(f"the request got no answer: {error!r}")


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds: delay-seconds, or an HTTP-date from now (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime
    from time import time

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time())
