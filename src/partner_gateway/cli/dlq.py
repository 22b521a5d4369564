"""The cluster's dead-letter queue: `dlq list|replay` (PARTNER_GATEWAY_AMQP_URL)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from partner_gateway.cli.common import JsonFlag, fail, settings_or_exit, show
from partner_gateway.dispatch.queues.base import DeadLetter, WorkQueueError

if TYPE_CHECKING:
    from partner_gateway.dispatch.queues.rabbitmq import RabbitWorkQueue

T = TypeVar("T")
dlq_app = typer.Typer(
    rich_markup_mode="markdown",
    help="Inspect and replay the dead-letter queue (PARTNER_GATEWAY_AMQP_URL).",
    no_args_is_help=True,
)


LimitOption = Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")]
NO_BROKER = 2  # exit code: the command cannot run here at all (no broker configured)


def _with_queue(work: Callable[[RabbitWorkQueue], Awaitable[T]], as_json: bool) -> T:
    """Run `work` against the cluster's work queue; exit 2 when none is configured, 1 when the
    broker cannot be reached."""
    from partner_gateway.dispatch.queues.rabbitmq import RabbitWorkQueue

    url = settings_or_exit().amqp_url
    if url is None or not url.get_secret_value():
        fail(
            "no RabbitMQ configured: set PARTNER_GATEWAY_AMQP_URL (amqp://user:pass@host/vhost) "
            "to the broker the workers use",
            as_json,
            code=NO_BROKER,
        )

    async def run() -> T:
        async with RabbitWorkQueue(url.get_secret_value(), connection_name="partner-gateway cli") as queue:
            return await work(queue)

    try:
        return asyncio.run(run())
    except WorkQueueError as error:  # the message names the broker without its password
        fail(str(error), as_json)
    except (OSError, TimeoutError) as error:  # the connection broke off mid-way
        fail(f"RabbitMQ: {type(error).__name__}: {error}", as_json)


def _dead_letter_json(letter: DeadLetter) -> dict[str, object]:
    item = letter.item
    return {
        "outboxId": item.outbox_id if item else None,
        "messageId": item.message_id if item else None,
        "channel": item.channel if item else None,
        "attempt": item.attempt if item else None,
        "queue": letter.queue,
        "reason": letter.reason,
        "deathCount": letter.death_count,
        "replays": letter.replays,
        "deadLetteredAt": letter.dead_lettered_at.isoformat() if letter.dead_lettered_at else None,
        "error": letter.error,
        "payload": None if item else _printable(letter.payload[:1000]),
    }


def _printable(payload: bytes) -> str:
    """An undecodable payload as a person can read it: text as it is, anything else escaped."""
    text = payload.decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


@dlq_app.command("list")
def dlq_list(limit: LimitOption = 100, as_json: JsonFlag = False) -> None:
    """Show dead letters, oldest first; they stay in the dead-letter queue."""

    async def work(queue: RabbitWorkQueue) -> list[DeadLetter]:
        return await queue.dead_letters(limit)

    letters = _with_queue(work, as_json)
    result = [_dead_letter_json(letter) for letter in letters]
    lines = []
    for entry in result:
        what = (
            f"{entry['messageId']} ({entry['channel']}, outbox {entry['outboxId']}, attempt {entry['attempt']})"
            if entry["messageId"]
            else f"undecodable: {entry['error']}"
        )
        lines.append(
            f"{what}  from {entry['queue'] or '?'}: {entry['reason']} x{entry['deathCount']}, "
            f"replayed {entry['replays']}x, at {entry['deadLetteredAt'] or '?'}"
        )
    show(result, as_json, "\n".join(lines) or "no dead letters")


@dlq_app.command("replay")
def dlq_replay(limit: LimitOption = 100, as_json: JsonFlag = False) -> None:
    """Move dead letters back to their channel's queue, for the workers to try again. Undecodable
    ones stay (they would only come straight back)."""

    async def work(queue: RabbitWorkQueue) -> int:
        return await queue.replay_dead_letters(limit)

    replayed = _with_queue(work, as_json)
    show({"replayed": replayed}, as_json, f"replayed {replayed} dead letters")
