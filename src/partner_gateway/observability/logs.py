"""The process's logging: one text format, or JSON lines, with the request's context on each line.

`PARTNER_GATEWAY_LOG_FORMAT=text` (the default) writes

    2026-12-02T07:15:30.123Z INFO partner_gateway.access: GET /partner-gateway/v1/... 200 0.9ms request_id=... company=cmp_...

and `json` one object per line, for a log shipper:

    {"time": "2026-12-02T07:15:30.123Z", "level": "INFO", "logger": "partner_gateway.access",
     "message": "GET ... 200 0.9ms", "request_id": "...", "company": "cmp_...", "method": "GET", ...}

Both carry what the current context knows (context.py: request id, company, message id) and the
fields a line was logged with (`extra={"fields": {...}}`, as the access log does). Times are UTC.

The simulators' HTTP clients log each of their requests through httpx at INFO: in a run of the
embedded gateway they were 1,600 of 1,700 lines. httpx and httpcore log at WARNING and above here.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

from partner_gateway.observability.context import current

LogFormat = Literal["text", "json"]
ACCESS_LOGGER = "partner_gateway.access"
QUIET_LOGGERS = ("httpx", "httpcore")
"""Loggers held at WARNING: their INFO lines are the simulators' own requests."""

access_log = logging.getLogger(ACCESS_LOGGER)
_CONTEXT_FIELDS = (("request_id", "request_id"), ("company_id", "company"), ("message_id", "message_id"))


def _utc(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _context(record: logging.LogRecord, *, own: bool) -> dict[str, Any]:
    """The context's fields (as the line was logged), then, with `own`, the line's own."""
    fields: dict[str, Any] = {}
    context = getattr(record, "context", None)
    if context is not None:
        for attribute, name in _CONTEXT_FIELDS:
            value = getattr(context, attribute)
            if value is not None:
                fields[name] = value
    if own:
        fields.update(getattr(record, "fields", None) or {})
    return fields


class ContextFilter(logging.Filter):
    """Stamps each record with the context current where it was logged (a handler may format it
    later, elsewhere)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "context"):
            record.context = current()
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc(record)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = _context(record, own=False)  # a line's own fields are in its message already
        if fields:
            line += " " + " ".join(f"{name}={value}" for name, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _utc(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(_context(record, own=True))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", log_format: LogFormat = "text") -> None:
    """The root logger writes to stderr in `log_format`; earlier handlers are replaced."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def log_access(method: str, route: str, status: int, seconds: float) -> None:
    """One line per partner request: method, route template, status, duration; the request id and
    company come from the context. Never a header, so never a key."""
    if access_log.isEnabledFor(logging.INFO):
        milliseconds = round(seconds * 1000, 2)
        access_log.info(
            "%s %s %d %.2fms",
            method,
            route,
            status,
            milliseconds,
            extra={
                "fields": {"method": method, "route": route, "status": status, "duration_ms": milliseconds},
                "context": current(),  # stamped here too: a handler without ContextFilter sees it
            },
        )
