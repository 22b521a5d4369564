"""The broker-neutral contract of a work queue: the item, its wire format, the queue protocol.

Wire format (version 1), UTF-8 JSON object:

    {"v": 1, "outbox_id": 42, "message_id": "01J...", "channel": "SMS", "attempt": 0}

Decoders accept a version they know and ignore keys they do not (a later v1 writer may add
optional keys); anything else (another version, a missing or mistyped field, bytes that are not
a JSON object) is refused with `WorkItemDecodeError`. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from partner_gateway.domain.statuses import Channel

WIRE_VERSION = 1
MAX_PAYLOAD_BYTES = 64 * 1024  # a v1 item is ~100 bytes; anything near this is not ours
CHANNELS: tuple[str, ...] = tuple(channel.value for channel in Channel)


class WorkQueueError(Exception):
    """The work queue could not do what was asked (topology conflict, refused publish...)."""


class WorkQueueUnavailable(WorkQueueError):
    """The broker could not be reached, or did not confirm in time; retrying later may work."""


class WorkItemDecodeError(ValueError):
    """A payload is not a work item this build understands."""


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One due outbox item: which message to hand over on which channel, and the attempt."""

    outbox_id: int
    message_id: str
    channel: str
    attempt: int

    def __post_init__(self) -> None:
        if not _is_int(self.outbox_id) or self.outbox_id < 1:
            raise ValueError(f"outbox_id must be a positive integer, not {self.outbox_id!r}")
        if not isinstance(self.message_id, str) or not self.message_id:
            raise ValueError("message_id must be a non-empty string")
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {self.channel!r}")
        if not _is_int(self.attempt) or self.attempt < 0:
            raise ValueError(f"attempt must be a non-negative integer, not {self.attempt!r}")

    def encode(self) -> bytes:
        document = {
            "v": WIRE_VERSION,
            "outbox_id": self.outbox_id,
            "message_id": self.message_id,
            "channel": self.channel,
            "attempt": self.attempt,
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, payload: bytes) -> WorkItem:
        """Parse a payload, or raise `WorkItemDecodeError` saying what is wrong with it."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise WorkItemDecodeError(f"payload of {len(payload)} bytes is too large for a work item")
        try:
            document = json.loads(payload.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise WorkItemDecodeError(f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise WorkItemDecodeError(f"payload is not JSON ({exc.msg} at offset {exc.pos})") from None
        if not isinstance(document, dict):
            raise WorkItemDecodeError(f"payload is a JSON {type(document).__name__}, not an object")
        version = document.get("v")
        if version is None:
            raise WorkItemDecodeError('payload has no version ("v")')
        if not _is_int(version) or version != WIRE_VERSION:
            raise WorkItemDecodeError(
                f"unsupported work item version {version!r} (this build reads {WIRE_VERSION})"
            )
        outbox_id = _int_field(document, "outbox_id")
        message_id = _str_field(document, "message_id")
        channel = _str_field(document, "channel")
        attempt = _int_field(document, "attempt")
        try:
            return cls(outbox_id=outbox_id, message_id=message_id, channel=channel, attempt=attempt)
        except ValueError as exc:
            raise WorkItemDecodeError(f"invalid work item: {exc}") from None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery parked in the dead-letter queue, as an operator inspects it."""

    payload: bytes
    item: WorkItem | None  # None when the payload does not decode
    error: str | None  # why it does not decode, when it does not
    queue: str  # the queue it was dead-lettered from
    reason: str  # broker reason: "delivery_limit", "rejected" (undecodable), "expired", ...
    death_count: int  # times it died in that queue for that reason
    replays: int  # times an operator has replayed it
    dead_lettered_at: datetime | None


Handler = Callable[[WorkItem], Awaitable[None]]


class WorkQueue(Protocol):
    async def publish(self, items: Sequence[WorkItem]) -> None:
        """Return only after the broker has durably accepted (confirmed) every item."""

    async def consume(
        self, channel: str, handler: Handler, *, prefetch: int, until: Awaitable[object] | None = None
    ) -> None:
        """Feed `channel`'s items to `handler`, up to `prefetch` at a time, until cancelled, or
        until `until` completes: then no new item is taken, and the running handlers finish.

        A delivery is acknowledged only after `handler` returned; if it raises, the delivery is
        rejected and redelivered later (dead-lettered past the delivery limit); a payload that
        does not decode is dead-lettered at once, without calling `handler`.
        """

    async def close(self) -> None:
        """Stop consumers (their unacknowledged deliveries go back to the queue) and disconnect."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(document: dict[str, Any], name: str) -> int:
    value = _present(document, name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WorkItemDecodeError(f"{name!r} must be an integer, not {type(value).__name__}")
    return value


def _str_field(document: dict[str, Any], name: str) -> str:
    value = _present(document, name)
    if not isinstance(value, str):
        raise WorkItemDecodeError(f"{name!r} must be a string, not {type(value).__name__}")
    return value


def _present(document: dict[str, Any], name: str) -> object:
    if name not in document:
        raise WorkItemDecodeError(f"payload has no {name!r}")
    return document[name]
