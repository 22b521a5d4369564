"""The two log formats: JSON parses line by line and carries the context; text is one line per
record with the context after the message; the simulators' httpx lines are held back."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from partner_gateway.observability import context, logs
from partner_gateway.observability.logs import (
    QUIET_LOGGERS,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    flush_access_log,
    log_access,
)


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    logs._writer = None  # the access log through logging again, as before
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)


def written(log_format: str, emit: object) -> list[str]:
    """Configure the format, run `emit`, return the lines written to stderr."""
    stream = io.StringIO()
    configure_logging("INFO", log_format, stream)  # type: ignore[arg-type]
    emit()  # type: ignore[operator]
    flush_access_log()
    return stream.getvalue().splitlines()


def emit_in_a_request() -> None:
    token = context.enter(context.RequestContext("req-7", company_id="cmp_1"))
    try:
        context.set_message("msg_9")
        logging.getLogger("partner_gateway.test").info("looked up %s", "msg_9")
        log_access("GET", "/partner-gateway/v1/messages/status/{customerMessageId}", 200, 0.00123)
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            logging.getLogger("partner_gateway.test").exception("failed")
    finally:
        context.leave(token)
    logging.getLogger("partner_gateway.test").warning("outside any request")
    logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1:1/ 200 OK")


@pytest.mark.usefixtures("restored_logging")
def test_json_is_one_object_per_line_with_the_request_context() -> None:
    lines = written("json", emit_in_a_request)
    records = [json.loads(line) for line in lines]  # a traceback stays inside its line
    assert len(records) == 4
    looked_up, access, failed, outside = records
    assert looked_up["message"] == "looked up msg_9"
    assert (looked_up["level"], looked_up["logger"]) == ("INFO", "partner_gateway.test")
    assert (looked_up["request_id"], looked_up["company"], looked_up["message_id"]) == (
        "req-7",
        "cmp_1",
        "msg_9",
    )
    assert looked_up["time"].endswith("Z")
    assert access["logger"] == "partner_gateway.access"
    assert (access["method"], access["status"], access["duration_ms"]) == ("GET", 200, 1.23)
    assert access["route"].endswith("{customerMessageId}")
    assert access["request_id"] == "req-7"
    assert "ValueError: boom" in failed["exception"]
    assert "request_id" not in outside


@pytest.mark.usefixtures("restored_logging")
def test_text_is_one_format_with_the_context_after_the_message() -> None:
    lines = written("text", emit_in_a_request)
    assert lines[0].endswith(
        "INFO partner_gateway.test: looked up msg_9 request_id=req-7 company=cmp_1 message_id=msg_9"
    )
    assert lines[0][:24].endswith("Z")
    assert lines[1].endswith(
        "partner_gateway.access: GET /partner-gateway/v1/messages/status/{customerMessageId} 200 1.23ms "
        "request_id=req-7 company=cmp_1 message_id=msg_9"
    )
    assert not any("HTTP Request" in line for line in lines)
    assert lines[-1].endswith("WARNING partner_gateway.test: outside any request")


def test_formatters_do_not_need_the_filter() -> None:
    """A record logged where no ContextFilter ran (another handler's) still formats."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %s", ("line",), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "plain line"
    assert TextFormatter().format(record).endswith("INFO x: plain line")
