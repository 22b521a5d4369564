"""Status callbacks from the command line: `callbacks replay` (send a company's events again)
and `callbacks listen` (a local receiver that prints each callback and checks its signature)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from partner_gateway.cli.common import JsonFlag, fail, show, with_runtime
from partner_gateway.domain.timefmt import format_ms, now_ms, parse_date_or_datetime
from partner_gateway.runtime import Runtime

callbacks_app = typer.Typer(
    rich_markup_mode="markdown",
    help="Status callbacks: replay them, or watch them arrive.",
    no_args_is_help=True,
)

LISTEN_SECRET_VARIABLE = "PARTNER_GATEWAY_CALLBACK_LISTEN_SECRET"  # noqa: S105 - a variable's name


def parse_time(value: str, option: str, as_json: bool) -> int:
    try:
        return parse_date_or_datetime(value)
    except ValueError:
        fail(
            f"{option} must be an RFC 3339 date-time with an offset, or a date (YYYY-MM-DD): {value!r}",
            as_json,
            2,
        )


@callbacks_app.command("replay")
def callbacks_replay(
    company: Annotated[str, typer.Option("--company", help="The company whose events to send again.")],
    since: Annotated[
        str, typer.Option("--since", help="Events that occurred from (inclusive): RFC 3339 or a date.")
    ],
    until: Annotated[
        str | None, typer.Option("--until", help="Events that occurred before (exclusive); default: now.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue a company's callback events of a time window again, delivered or given up alike:
    the same bodies and eventIds, a fresh retry window, due now (for a partner back from an
    outage longer than the retry window)."""
    from partner_gateway.store.repositories.callback_deliveries import replay
    from partner_gateway.store.repositories.companies import CompanyRepository

    start = parse_time(since, "--since", as_json)
    end = parse_time(until, "--until", as_json) if until is not None else None
    if end is not None and end <= start:
        fail("--until must be after --since", as_json, 2)

    async def work(runtime: Runtime) -> int | None:
        async with runtime.database.write() as connection:
            if await CompanyRepository(connection).get(company) is None:
                return None
            return await replay(connection, company, start, end, now_ms())

    replayed = with_runtime(work)
    if replayed is None:
        fail(f"no company {company!r}", as_json)
    window = f"{format_ms(start)} to {format_ms(end) if end is not None else 'now'}"
    show({"replayed": replayed}, as_json, f"{replayed} events from {window} queued again")


@callbacks_app.command("listen")
def callbacks_listen(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            help=f"The company's signing secret (repeat during a rotation); default ${LISTEN_SECRET_VARIABLE}.",
        ),
    ] = None,
    status: Annotated[int, typer.Option(help="The status to answer each callback with.")] = 204,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Print nothing per callback (a load test's sink).")
    ] = False,
) -> None:
    """Receive status callbacks and print each one, with whether its signature is the secret's.
    Point a company at it with `company callbacks ID --url http://127.0.0.1:9000/` and serve with
    PARTNER_GATEWAY_CALLBACK_ALLOW_PRIVATE_NETWORKS=true (loopback is refused otherwise)."""
    import uvicorn

    from partner_gateway.callbacks.listener import CallbackReceiver, Received, describe

    secrets = list(secret or [])
    if not secrets and os.environ.get(LISTEN_SECRET_VARIABLE):
        secrets = [os.environ[LISTEN_SECRET_VARIABLE]]

    async def answer(_received: Received) -> int:
        return status

    def printed(received: Received, answered: int) -> None:
        typer.echo(describe(received, answered))

    receiver = CallbackReceiver(
        secrets, answer=answer, on_received=None if quiet else printed, keep=not quiet
    )
    typer.echo(
        f"listening on http://{host}:{port}/"
        + ("" if secrets else f" (no secret: signatures not checked; --secret or ${LISTEN_SECRET_VARIABLE})"),
        err=True,
    )
    uvicorn.run(receiver, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
