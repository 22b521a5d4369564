"""The shared harness of the provider tests (import as ``channels.harness``): doubles for what a
provider is given, its HTTP peer, the no-secret-in-logs check, and the table-driven case shape.

- :class:`RecordingSink` (a ReportSink) and :class:`RecordingGuard` (a HandoverGuard) record what the
  provider did with them.
- :class:`ScriptedPeer`: the provider's HTTP API for an ``httpx.MockTransport``, answering in turn.
- :func:`secrets_kept_out_of_logs`: the body of each provider test module's autouse fixture; after
  every case no secret may appear in a log record.
- :class:`SendErrorCase` and :func:`table`: one row per way a send can fail, and what it must become.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import httpx
import pytest

from partner_gateway.channels.base import SendError, SendErrorKind, StatusReport
from partner_gateway.domain.inbound import InboundMessage, InboundPart


class RecordingSink:
    """A ReportSink that keeps what it is given. It raises instead, as a store that is down would,
    while ``failing`` is set, and for the next ``failures`` calls (counted down)."""

    def __init__(self, *, failing: bool = False, failures: int = 0) -> None:
        self.reports: list[StatusReport] = []
        self.inbound: list[InboundMessage | InboundPart] = []
        self.failing = failing
        self.failures = failures

    async def record(self, reports: Sequence[StatusReport]) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database unavailable")
        if self.failing:
            raise RuntimeError("database unavailable")
        self.reports.extend(reports)

    async def receive(self, items: Sequence[InboundMessage | InboundPart]) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database unavailable")
        if self.failing:
            raise RuntimeError("database unavailable")
        self.inbound.extend(items)


class RecordingGuard:
    """A HandoverGuard that notes ``before_write:<message id>`` in ``log`` (which may be shared with
    a peer's, to show the order of the two)."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.log = log if log is not None else []

    async def before_write(self, message_id: str) -> None:
        self.log.append(f"before_write:{message_id}")


@dataclass
class ScriptedPeer:
    """A provider's HTTP peer: answers ``answers`` in turn (the last one repeats; an exception is
    raised, as the transport would) and keeps every request."""

    answers: list[httpx.Response | Exception] = field(default_factory=lambda: [httpx.Response(200, json={})])
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def logged_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record of the test so far (set-up, call, tear-down), formatted (a traceback included),
    with its raw arguments too, so a secret passed as one is seen whatever the format."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = [record for when in ("setup", "call", "teardown") for record in caplog.get_records(when)]
    return [f"{formatter.format(record)} {record.args!r}" for record in records]


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture, secrets: Iterable[str]) -> None:
    wanted = [secret for secret in secrets if secret]
    for line in logged_lines(caplog):
        assert not [secret for secret in wanted if secret in line], f"a secret reached the log: {line}"


def secrets_kept_out_of_logs(caplog: pytest.LogCaptureFixture, secrets: Iterable[str]) -> Iterator[None]:
    """Capture every record (DEBUG and up) while the test runs, then assert no secret reached one.

    A module's autouse fixture is ``yield from secrets_kept_out_of_logs(caplog, SECRETS)``. The check
    reads the records of every phase: at tear-down, ``caplog.records`` holds only tear-down's own.
    """
    caplog.set_level(logging.DEBUG)
    yield
    assert_no_secret_logged(caplog, secrets)


@dataclass(frozen=True, slots=True)
class SendErrorCase:
    """A way a send fails: what the provider's peer answers (in turn), and the SendError it must
    become. ``words`` must appear in the description, in any case."""

    id: str
    answers: Sequence[httpx.Response | Exception]
    kind: SendErrorKind
    code: str | None
    retry_after: float | None = None
    words: str = ""

    def peer(self) -> ScriptedPeer:
        return ScriptedPeer(list(self.answers))

    def check(self, error: SendError, provider: str) -> None:
        assert (error.kind, error.code, error.retry_after, error.provider) == (
            self.kind,
            self.code,
            self.retry_after,
            provider,
        )
        assert self.words.lower() in error.description.lower(), error.description


def table(cases: Sequence[SendErrorCase]) -> pytest.MarkDecorator:
    """Run the test once per case, given as ``case`` and named by its id."""
    return pytest.mark.parametrize("case", cases, ids=[case.id for case in cases])
