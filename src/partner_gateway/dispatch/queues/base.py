"""The broker-neutral contract of a work queue: the item, its wire format, the queue protocol.

Wire format (version 1), UTF-8 JSON object:

    {"v": 1, "outbox_id": 42, "message_id": "01J...", "channel": "SMS", "attempt": 0}

Decoders accept a version they know and ignore keys they do not (a later v1 writer may add
optional keys); anything else (another version, a missing or mistyped field, bytes that are not
a JSON object) is refused with `WorkItemDecodeError`. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import msgspec

from partner_gateway.domain.statuses import CHANNEL_NAME, Channel

WIRE_VERSION = 1
MAX_PAYLOAD_BYTES = 64 * 1024  # a v1 item is ~100 bytes; anything near this is not ours
CHANNELS: tuple[str, ...] = tuple(channel.value for channel in Channel)
"""SPEC §1's channels: what a queue serves unless told its registry's (RabbitWorkQueue(channels=))."""


class WorkQueueError(Exception):
    """The work queue could not do what was asked (topology conflict, refused publish...)."""


class WorkQueueUnavailable(WorkQueueError):
    """The broker could not be reached, or did not confirm in time; retrying later may work."""


class WorkItemDecodeError(ValueError):
    """A payload is not a work item this build understands."""


class WorkItem(msgspec.Struct, frozen=True, tag_field="v", tag=WIRE_VERSION):
    """One due outbox item: which message to hand over on which channel, and the attempt.

    Encoded, the version tag comes first: `{"v":1,"outbox_id":...}`, byte for byte what v1
    writers published for every id the gateway makes (printable ASCII); other text is written
    as UTF-8 rather than as \\u escapes, which any JSON reader takes for the same item.
    """

    outbox_id: int
    message_id: str
    channel: str
    attempt: int

    def __post_init__(self) -> None:
        if not _is_int(self.outbox_id) or self.outbox_id < 1:
            raise ValueError(f"outbox_id must be a positive integer, not {self.outbox_id!r}")
        if not isinstance(self.message_id, str) or not self.message_id:
            raise ValueError("message_id must be a non-empty string")
        if not isinstance(self.channel, str) or not CHANNEL_NAME.fullmatch(self.channel):
            raise ValueError(
                f"channel must be a channel's name ({CHANNEL_NAME.pattern}), not {self.channel!r}"
            )
        if not _is_int(self.attempt) or self.attempt < 0:
            raise ValueError(f"attempt must be a non-negative integer, not {self.attempt!r}")

    def encode(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def decode(cls, payload: bytes, channels: Collection[str] = CHANNELS) -> WorkItem:
        """Parse a payload for one of `channels`, or raise `WorkItemDecodeError` saying what is
        wrong with it."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise WorkItemDecodeError(f"payload of {len(payload)} bytes is too large for a work item")
        try:
            document = _DECODER.decode(payload)
        except msgspec.MsgspecError as exc:
            raise WorkItemDecodeError(_what_is_wrong(payload, exc)) from None
        if document.v != WIRE_VERSION:
            raise WorkItemDecodeError(_unsupported(document.v))
        if document.channel not in channels:
            raise WorkItemDecodeError(
                f"invalid work item: channel must be one of {', '.join(channels)}, not {document.channel!r}"
            )
        try:
            return cls(document.outbox_id, document.message_id, document.channel, document.attempt)
        except ValueError as exc:
            raise WorkItemDecodeError(f"invalid work item: {exc}") from None


class _Document(WorkItem, frozen=True, tag=False):
    """A work item as read off the wire: its fields, and the version, which must be there (a
    struct's tag alone is optional to msgspec's decoder)."""

    v: int

    def __post_init__(self) -> None:
        """Nothing: the item's own checks run once the version is known to be ours."""


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_Document)
_KINDS = {int: "an integer", str: "a string"}


def _what_is_wrong(payload: bytes, error: msgspec.MsgspecError) -> str:
    """Why msgspec refused a payload, in the order a reader checks it: UTF-8, JSON, an object,
    its version, then each field. Only refused payloads are read this second time."""
    try:
        document = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"payload is not UTF-8 ({exc.reason} at byte {exc.start})"
    except json.JSONDecodeError as exc:
        return f"payload is not JSON ({exc.msg} at offset {exc.pos})"
    if not isinstance(document, dict):
        return f"payload is a JSON {type(document).__name__}, not an object"
    version = document.get("v")
    if version is None:
        return 'payload has no version ("v")'
    if not _is_int(version) or version != WIRE_VERSION:
        return _unsupported(version)
    for field in msgspec.structs.fields(WorkItem):
        if field.name not in document:
            return f"payload has no {field.name!r}"
        value = document[field.name]
        if not isinstance(value, field.type) or isinstance(value, bool):
            return f"{field.name!r} must be {_KINDS[field.type]}, not {type(value).__name__}"
    return f"invalid work item: {error}"  # what JSON allows and msgspec does not


def _unsupported(version: object) -> str:
    return f"unsupported work item version {version!r} (this build reads {WIRE_VERSION})"


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
