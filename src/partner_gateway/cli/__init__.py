"""The `partner-gateway` command: serve, migrate, manage companies, API keys and callbacks, look
up any message, and inspect and replay the RabbitMQ dead-letter queue.

Every command works on a fresh, empty store: each brings the schema up to date first. One that
cannot start says why in one line (partner_gateway/startup.py).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated

import typer

from partner_gateway.cli import carriers
from partner_gateway.cli.callbacks import callbacks_app
from partner_gateway.cli.companies import apikey_app, company_app
from partner_gateway.cli.dlq import dlq_app
from partner_gateway.cli.messages import messages_app
from partner_gateway.cli.serving import migrate, serve, simulate_app

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Partner Gateway: SMS, RCS and WhatsApp for partner companies.",
    no_args_is_help=True,
)
app.command()(serve)
app.command()(migrate)
app.add_typer(company_app, name="company")
app.add_typer(apikey_app, name="apikey")
app.add_typer(messages_app, name="messages")
app.add_typer(dlq_app, name="dlq")
app.add_typer(simulate_app, name="simulate")
app.add_typer(callbacks_app, name="callbacks")
carriers.register(app)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"partner-gateway {version('partner-gateway')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Partner Gateway: SMS, RCS and WhatsApp for partner companies."""


def main() -> None:
    app(prog_name="partner-gateway")
