"""The provider contract: what every channel implements, and what it may rely on.

A provider hands messages to a carrier or a channel provider and turns what comes back (SMPP
receipts, webhooks) into `StatusReport`s. It classifies its failures by what should happen next
(`SendError.kind`), never by its own codes; the dispatcher alone turns that into a status.

    SendError
      kind "retry"      transient: nothing was accepted; try again after `retry_after`
      kind "throttled"  the provider asked us to slow down; try again later
      kind "permanent"  refused for good (invalid destination, ...): the message ends in ERROR
      kind "ambiguous"  written, but no answer: the provider may have accepted it
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from partner_gateway.domain.inbound import InboundMessage, InboundPart
from partner_gateway.domain.reports import StatusReport
from partner_gateway.domain.statuses import Channel, DeliveryStatus


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message as the dispatcher hands it to a provider."""

    message_id: str
    company_id: str
    channel: Channel
    to: str
    sender: str | None
    content: Mapping[str, Any]  # the channel's fields of the send request, as the partner sent them
    created_at: int
    expires_at: int
    parts_done: int = 0  # parts accepted by an earlier attempt; send the rest


@dataclass(frozen=True, slots=True)
class SubmittedPart:
    part_no: int
    parts_total: int
    provider_message_id: str
    provider_key: str  # canonical form, the one receipts are matched on


@dataclass(frozen=True, slots=True)
class Accepted:
    """The provider accepted the message (all its remaining parts)."""

    provider: str
    parts: tuple[SubmittedPart, ...]
    description: str = "Accepted by the provider"
    raw_state: str = "ACCEPTED"


SendErrorKind = Literal["retry", "throttled", "permanent", "ambiguous"]


class SendError(Exception):
    def __init__(
        self,
        kind: SendErrorKind,
        description: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        provider: str = "",
        accepted_parts: Sequence[SubmittedPart] = (),
        channel_unavailable: bool = False,
    ) -> None:
        super().__init__(description)
        self.kind = kind
        self.description = description
        self.code = code
        self.retry_after = retry_after
        self.provider = provider
        self.accepted_parts = tuple(accepted_parts)  # parts accepted before the failure
        # The destination cannot receive on this channel at all (RCS: not RCS-capable): the
        # dispatcher may send the message's fallback instead.
        self.channel_unavailable = channel_unavailable


__all__ = [
    "Accepted",
    "AlwaysAccepting",
    "HandoverGuard",
    "OutboundMessage",
    "Provider",
    "ReportSink",
    "SendError",
    "SendErrorKind",
    "StateRule",
    "StatusReport",  # the domain's (domain/reports.py): what a provider makes of a receipt or webhook
    "SubmittedPart",
    "WebhookHandler",
    "WebhookRoute",
    "wait_always_accepting",
    "webhook_problem",
]


@dataclass(frozen=True, slots=True)
class StateRule:
    """One row of a provider's state table: a state it reports, in the gateway's terms (the raw
    state is kept beside it in the report)."""

    status: DeliveryStatus | None  # None: recorded in the timeline, changes no status
    description: str
    is_final: bool = False
    is_read: bool = False  # a read receipt: keeps DELIVERED and sets readAt
    error_code: str | None = None
    channel_unavailable: bool = False  # the channel gave up on the destination: a fallback's cue


class ReportSink(Protocol):
    async def record(self, reports: Sequence[StatusReport]) -> None:
        """Store reports durably; returns once they are committed (then acknowledge them)."""

    async def receive(self, items: Sequence[InboundMessage | InboundPart]) -> None:
        """Store what users sent (MO SMS and its parts, WhatsApp and RBM user messages) durably;
        returns once committed. Raises `partner_gateway.errors.Unavailable` when the store cannot
        take them now: answer so that the provider offers them again."""


class HandoverGuard(Protocol):
    async def before_write(self, message_id: str) -> None:
        """Called right before the first byte of a message goes to the provider; returns once
        that is durably recorded, so a crash afterwards is known to be ambiguous."""


WebhookHandler = Callable[[bytes, Mapping[str, str], Mapping[str, str]], Awaitable[tuple[int, bytes, str]]]


WEBHOOK_PROBLEM_BASE = "https://partner-gateway.dev/problems/"
"""The `type` prefix of every problem a webhook answers: the API's own (api/problems.py)."""


def webhook_problem(status: int, slug: str, title: str, detail: str) -> tuple[int, bytes, str]:
    """A webhook's refusal as RFC 9457 problem details, in the shape every other error of the
    gateway has: one shape whichever provider called."""
    document = {"type": WEBHOOK_PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    return status, json.dumps(document).encode(), "application/problem+json"


@dataclass(frozen=True, slots=True)
class WebhookRoute:
    """An inbound route a provider needs (`/webhooks/<name>`), answered by `handler(body,
    headers, query) -> (status, body, content type)`; it authenticates by signature itself."""

    method: Literal["GET", "POST"]
    path: str
    handler: WebhookHandler


class Provider(Protocol):
    """A channel's provider. It may also set `resend_is_safe = True` (read with getattr, default
    False) when sending a message twice cannot deliver it twice (an idempotency key the provider
    honours): a hand-over left unanswered is then resent rather than ended UNKNOWN."""

    name: str
    channel: Channel

    async def start(self, sink: ReportSink) -> None:
        """Open connections (SMPP binds, HTTP clients); reports go to `sink`."""

    async def stop(self) -> None: ...

    async def send(self, message: OutboundMessage, guard: HandoverGuard) -> Accepted:
        """Hand the message over, or raise SendError."""

    def webhook_routes(self) -> Sequence[WebhookRoute]: ...

    @property
    def accepting(self) -> bool:
        """Whether this process can hand messages over now; False, for instance, while other
        workers hold every SMPP bind of the carrier. A dispatcher takes no work for it then."""

    async def wait_accepting(self, state: bool = True) -> None:
        """Return once :attr:`accepting` is `state` (a dispatcher pauses or resumes on it)."""


class AlwaysAccepting:
    """For providers with nothing to share between workers (HTTP APIs): always accepting."""

    @property
    def accepting(self) -> bool:
        return True

    async def wait_accepting(self, state: bool = True) -> None:
        await wait_always_accepting(state)


async def wait_always_accepting(state: bool) -> None:
    """`wait_accepting` of a provider that is always accepting: True at once, False never."""
    if not state:
        await asyncio.Event().wait()
