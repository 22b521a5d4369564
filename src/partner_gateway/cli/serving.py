"""Running the gateway: `serve` (the whole gateway, or one role of a cluster), `migrate`, and a
simulator alone (`simulate smsc`)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from partner_gateway.cli.common import (
    cannot_start,
    explain_or_raise,
    run_loop,
    settings_or_exit,
    with_runtime,
)
from partner_gateway.cli.simulate_mo import simulate_mo
from partner_gateway.config import Settings
from partner_gateway.observability.logs import configure_logging
from partner_gateway.startup import describe_store, listen_error

# The settings' own defaults, shown in the help (the options override the environment).
_DEFAULTS = {name: Settings.model_fields[name].default for name in ("host", "port", "role")}


def serve(
    host: Annotated[
        str | None,
        typer.Option(help=f"Listen address [default: PARTNER_GATEWAY_HOST, else {_DEFAULTS['host']}]"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help=f"Listen port [default: PARTNER_GATEWAY_PORT, else {_DEFAULTS['port']}]"),
    ] = None,
    role: Annotated[
        str | None,
        typer.Option(help=f"all, api or worker [default: PARTNER_GATEWAY_ROLE, else {_DEFAULTS['role']}]"),
    ] = None,
) -> None:
    """Run the gateway: partner API and delivery workers (and, with nothing configured, the
    built-in simulators), or only the API or only the workers of a cluster."""
    from partner_gateway.process import serve as serve_gateway

    overrides = {k: v for k, v in (("host", host), ("port", port), ("role", role)) if v is not None}
    settings = settings_or_exit(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("partner_gateway").info("store: %s", describe_store(settings))
    try:
        run_loop(serve_gateway(settings))
    except PermissionError as error:  # a port below 1024
        cannot_start(listen_error(error, settings.host, settings.port))
    except Exception as error:  # a taken port, an unreachable store: one line (startup.py)
        explain_or_raise(error, settings)


simulate_app = typer.Typer(rich_markup_mode="markdown", help="Run a simulator alone.", no_args_is_help=True)


@simulate_app.command("smsc")
def simulate_smsc(
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port")] = 2775,
    system_id: Annotated[str, typer.Option(help="The system_id binds must use")] = "gateway",
    password: Annotated[
        str, typer.Option(help="The password binds must use", envvar="SMSC_PASSWORD")
    ] = "secret",  # noqa: S107 - the simulator's default, on loopback
    receipt_delay: Annotated[float, typer.Option(help="Seconds before a receipt (upper bound)")] = 1.0,
    max_throughput: Annotated[float | None, typer.Option(help="submit_sm/s per connection")] = None,
) -> None:
    """An SMPP 3.4 SMSC that decides each message's fate by the destination's last two digits."""
    from partner_gateway.simulators.smsc import SmscConfig, serve_forever

    configure_logging("INFO", settings_or_exit().log_format)
    config = SmscConfig(
        host=host,
        port=port,
        system_id=system_id,
        password=password,
        receipt_delay_min_seconds=receipt_delay / 2,
        receipt_delay_max_seconds=max(receipt_delay, 0.001),
        max_throughput=max_throughput,
    )
    run_loop(serve_forever(config))


simulate_app.command("mo")(simulate_mo)


def migrate() -> None:
    """Create the schema, or upgrade it to this version's."""
    from partner_gateway.store.migrate import current_revision

    revision = with_runtime(lambda runtime: current_revision(runtime.database))
    typer.echo(f"schema at revision {revision}")
