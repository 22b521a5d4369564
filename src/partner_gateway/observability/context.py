"""The request, or the delivery, a piece of work belongs to: carried by a context variable.

Each partner request gets a `RequestContext` when it arrives (api/front.py): its request id (the
client's `X-Request-Id` when that is acceptable, else a new one), and, once known, its company
and message. A hand-over gets one with its message and company. Log lines carry what the current
context holds (logs.py), and problem documents the request id (api/problems.py).

The context is one mutable object per request, not a variable per field: the framework may
resolve a dependency (the key check that learns the company) in a task of its own, and a value
set there would not be seen by the request's own task; an attribute of a shared object is.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar, Token
from dataclasses import dataclass

REQUEST_ID_HEADER = "X-Request-Id"
MAX_REQUEST_ID_LENGTH = 128
# Characters that need no quoting in a header, a log line or JSON, and cannot split either.
_ACCEPTABLE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._~:/+=@-]{{1,{MAX_REQUEST_ID_LENGTH}}}")


@dataclass(slots=True)
class RequestContext:
    request_id: str | None = None
    company_id: str | None = None
    message_id: str | None = None


_CURRENT: ContextVar[RequestContext | None] = ContextVar("partner_gateway_request", default=None)


def current() -> RequestContext | None:
    """The context of the work running now, if any."""
    return _CURRENT.get()


def enter(context: RequestContext) -> Token[RequestContext | None]:
    """Make `context` current; give the token to `leave` when the work ends."""
    return _CURRENT.set(context)


def leave(token: Token[RequestContext | None]) -> None:
    _CURRENT.reset(token)


def set_company(company_id: str) -> None:
    """The current request's company, once its key is checked."""
    context = _CURRENT.get()
    if context is not None:
        context.company_id = company_id


def set_message(message_id: str) -> None:
    """The message the current request is about (a look-up, an accepted send)."""
    context = _CURRENT.get()
    if context is not None:
        context.message_id = message_id


def current_request_id() -> str | None:
    context = _CURRENT.get()
    return context.request_id if context is not None else None


def request_id_from(given: str | None) -> str:
    """The client's request id when it is acceptable (1 to 128 characters of letters, digits and
    ``._~:/+=@-``), else a new one: an unacceptable id is replaced, never refused, so a request
    is not failed for the header meant to trace it."""
    if given is not None and _ACCEPTABLE_REQUEST_ID.fullmatch(given):
        return given
    return new_request_id()


def new_request_id() -> str:
    """128 random bits as 32 hex digits: unique without coordination between processes."""
    return os.urandom(16).hex()
