"""Start-up failures as one line for the operator: bad settings (exit 2), unreachable dependencies (exit 1).

A process that cannot start says why in one line on stderr, naming the `PARTNER_GATEWAY_*`
variable or the host and port it could not reach (never a password), and exits non-zero:

    2  configuration: a setting that does not parse or validate, a database URL it cannot use
    1  a dependency: the store (or a port to listen on) cannot be reached or used

instead of a traceback of tens or hundreds of lines.
"""

from __future__ import annotations

import errno
import json
import socket
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from partner_gateway.config import ENV_PREFIX, Settings

CONFIGURATION = 2
DEPENDENCY = 1


class StartupError(Exception):
    """Why a process cannot start, in one line, and the exit code that says which kind."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (and the command line's `overrides`), or StartupError."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise StartupError(_invalid(error), CONFIGURATION) from None
    except SettingsError as error:
        raise StartupError(_unparsable(error), CONFIGURATION) from None


def _invalid(error: ValidationError) -> str:
    """The first problem, naming its variable; how many more there are."""
    problems = error.errors(include_url=False)
    first = problems[0]
    location = [str(part) for part in first["loc"]]
    variable = ENV_PREFIX + location[0].upper() if location else "settings"
    inner = "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in location[1:])
    given = first.get("input")
    shown = (
        f" (got {given!r})" if isinstance(given, str | int | float) and location[0] != "database_url" else ""
    )
    more = f"; and {len(problems) - 1} more" if len(problems) > 1 else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{variable}{inner}: {message}{shown}{more}"


def _unparsable(error: SettingsError) -> str:
    """pydantic-settings could not read a value as JSON: name the variable and the position."""
    text = str(error)
    field = text.split('"')[1] if text.count('"') >= 2 else "settings"
    cause = error.__cause__
    where = (
        f" ({cause.msg} at line {cause.lineno} column {cause.colno})"
        if isinstance(cause, json.JSONDecodeError)
        else ""
    )
    return f"{ENV_PREFIX}{field.upper()}: not valid JSON{where}"


def dependency_error(error: BaseException, settings: Settings) -> StartupError | None:
    """The one line for a failure to reach what the process depends on, or None when `error` is
    not such a failure (it is then a bug, and keeps its traceback)."""
    store = describe_store(settings)
    match error:
        case StartupError():
            return error
        case OSError() if error.errno == errno.EADDRINUSE:
            return listen_error(error, settings.host, settings.port)
        case ConnectionRefusedError():
            return StartupError(f"the store at {store} cannot be reached: connection refused", DEPENDENCY)
        case socket.gaierror():
            return StartupError(f"the store at {store} cannot be reached: host not found", DEPENDENCY)
        case TimeoutError():
            return StartupError(f"the store at {store} cannot be reached: no answer", DEPENDENCY)
        case DBAPIError() if error.orig is not None:
            return StartupError(f"the store at {store} refused: {error.orig}", DEPENDENCY)
        case OSError() if error.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
            return StartupError(f"the store at {store} cannot be reached: {error.strerror}", DEPENDENCY)
    return None


def listen_error(error: OSError, host: str, port: int, port_variable: str = "PORT") -> StartupError:
    reason = "the address is in use" if error.errno == errno.EADDRINUSE else (error.strerror or str(error))
    return StartupError(
        f"cannot listen on {host}:{port}: {reason} ({ENV_PREFIX}HOST, {ENV_PREFIX}{port_variable})",
        DEPENDENCY,
    )


def describe_store(settings: Settings) -> str:
    """Where the store is, for an operator, without its password: a path or host:port/database."""
    try:
        url = make_url(settings.resolved_database_url())
    except ArgumentError:
        return "?"
    if url.get_backend_name() == "sqlite":
        path = url.database or ":memory:"
        return f"SQLite {path if path == ':memory:' else Path(path).resolve()}"
    return f"PostgreSQL {url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
