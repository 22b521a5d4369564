"""A small callback receiver: takes the gateway's status callbacks, checks their signatures,
and tells what came (`partner-gateway callbacks listen`; the tests' receiver too).

An ASGI app, served by uvicorn like the gateway. Each POST is kept as a `Received` (the raw
body, the event id, whether a signature matched one of the secrets given) and passed to
`on_received` (the command prints it); its answer is `answer(received)`'s status (204 unless
told otherwise), so a test can make it fail, hang or recover.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from partner_gateway.callbacks.attempt import EVENT_ID_HEADER
from partner_gateway.callbacks.signing import SIGNATURE_HEADER, InvalidSignature, verify

MAX_BODY_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    verified: bool | None
    """True: a signature matched a secret; False: none did (or it was stale); None: no secret given."""
    received_at: float

    @property
    def event_id(self) -> str:
        return self.headers.get(EVENT_ID_HEADER.lower(), "")

    @property
    def signature(self) -> str:
        return self.headers.get(SIGNATURE_HEADER.lower(), "")

    def json(self) -> Any:
        return json.loads(self.body)


Answer = Callable[[Received], Awaitable[int]]


async def accept_all(_received: Received) -> int:
    return 204


class CallbackReceiver:
    """An ASGI app taking callbacks; `received` keeps every one, in the order they came (unless
    not `keep`: then only `count` them)."""

    def __init__(
        self,
        secrets: Sequence[str] = (),
        *,
        answer: Answer = accept_all,
        on_received: Callable[[Received, int], None] | None = None,
        keep: bool = True,
    ) -> None:
        self.secrets = list(secrets)
        self.keep = keep
        self.count = 0
        self.answer = answer
        self.on_received = on_received
        self.received: list[Received] = []

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY_BYTES:
                await _reply(send, 413)
                return
        if scope["method"] != "POST":
            await _reply(send, 405)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        received = Received(scope["path"], headers, body, self._verify(headers, body), time.time())
        self.count += 1
        if self.keep:
            self.received.append(received)
        status = await self.answer(received)
        if self.on_received is not None:
            self.on_received(received, status)
        await _reply(send, status)

    def _verify(self, headers: dict[str, str], body: bytes) -> bool | None:
        if not self.secrets:
            return None
        try:
            verify(headers.get(SIGNATURE_HEADER.lower(), ""), body, self.secrets, now=int(time.time()))
        except InvalidSignature:
            return False
        return True


async def _reply(send: Callable[..., Any], status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def describe(received: Received, status: int) -> str:
    """One callback as `callbacks listen` prints it: a summary line, then the body."""
    mark = {True: "signature ok", False: "SIGNATURE INVALID", None: "signature not checked (no --secret)"}
    try:
        event = received.json()
        summary = (
            f"#{event.get('sequence')} {event.get('customerMessageId')} {event.get('channel')} "
            f"{event.get('deliveryStatus')} ({event.get('deliveryStatusDescription')})"
        )
    except (ValueError, AttributeError):
        summary = "(not JSON)"
    stamp = time.strftime("%H:%M:%S", time.localtime(received.received_at))
    return (
        f"{stamp} {received.event_id or '(no event id)'} {summary} -> {status}, "
        f"{mark[received.verified]}\n  {received.body.decode('utf-8', 'replace')}"
    )
