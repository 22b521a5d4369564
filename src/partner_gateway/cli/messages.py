"""Any message by id, whichever company sent it, with its timeline: `messages show ID`."""

from __future__ import annotations

import typer

from partner_gateway.cli.common import JsonFlag, fail, show, with_runtime
from partner_gateway.domain.timefmt import format_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.operator import MessageRecord, OperatorQueries

messages_app = typer.Typer(
    rich_markup_mode="markdown",
    help="Look up messages across companies (for operators).",
    no_args_is_help=True,
)


@messages_app.command("show")
def messages_show(message_id: str, as_json: JsonFlag = False) -> None:
    """A message's status and timeline, whichever company sent it."""

    async def work(runtime: Runtime) -> MessageRecord | None:
        async with runtime.database.read() as connection:
            return await OperatorQueries(connection).message(message_id)

    record = with_runtime(work)
    if record is None:
        fail(f"no message {message_id!r}", as_json)
    status = record.status
    data = {
        "customerMessageId": status.id,
        "companyId": record.company_id,
        "channel": status.channel.value,
        "to": status.to,
        "reference": status.reference,
        "deliveryStatus": status.status.value,
        "deliveryStatusDescription": status.description,
        "errorCode": status.error_code,
        "createdAt": format_ms(status.created_at),
        "updatedAt": format_ms(status.updated_at),
        "events": [
            {
                "occurredAt": format_ms(event.occurred_at),
                "source": event.source,
                "deliveryStatus": event.status.value if event.status else None,
                "rawState": event.raw_state,
                "description": event.description,
                "errorCode": event.error_code,
                **(
                    {"providerOccurredAt": format_ms(event.reported_at)}
                    if event.reported_at is not None
                    else {}
                ),
            }
            for event in record.events
        ],
    }
    lines = [
        f"{status.id} ({status.channel.value} to {status.to}) of company {record.company_id}",
        f"  {status.status.value}: {status.description}"
        + (f" [{status.error_code}]" if status.error_code else ""),
        f"  created {format_ms(status.created_at)}, updated {format_ms(status.updated_at)}",
        *(
            f"  {format_ms(event.occurred_at)}  {event.status.value if event.status else '-':9} "
            f"{event.raw_state or '':14} {event.description} ({event.source})"
            for event in record.events
        ),
    ]
    show(data, as_json, "\n".join(lines))
