"""The `partner-gateway` command: serve, migrate, manage companies and API keys, and inspect and
replay the RabbitMQ dead-letter queue.

Every command works on a fresh, empty store: each brings the schema up to date first.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from partner_gateway.config import Settings
from partner_gateway.dispatch.queues.base import DeadLetter, WorkQueueError
from partner_gateway.domain.timefmt import format_ms, now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.startup import (
    StartupError,
    dependency_error,
    describe_store,
    listen_error,
    load_settings,
)
from partner_gateway.store.repositories.companies import CompanyRepository

if TYPE_CHECKING:
    from partner_gateway.dispatch.queues.rabbitmq import RabbitWorkQueue

app = typer.Typer(help="Partner Gateway: SMS, RCS and WhatsApp for partner companies.", no_args_is_help=True)
company_app = typer.Typer(help="Manage companies.", no_args_is_help=True)
apikey_app = typer.Typer(help="Manage API keys (several per company, for rotation).", no_args_is_help=True)
dlq_app = typer.Typer(
    help="Inspect and replay the dead-letter queue (PARTNER_GATEWAY_AMQP_URL).", no_args_is_help=True
)
app.add_typer(company_app, name="company")
app.add_typer(apikey_app, name="apikey")
app.add_typer(dlq_app, name="dlq")

T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]


def _settings(**overrides: Any) -> Settings:
    """The settings, or one line saying which variable is wrong (exit 2)."""
    try:
        return load_settings(**overrides)
    except StartupError as error:
        _cannot_start(error)


def _cannot_start(error: StartupError) -> NoReturn:
    typer.echo(f"error: {error.message}", err=True)
    raise typer.Exit(code=error.exit_code)


def _with_runtime(work: Callable[[Runtime], Awaitable[T]], *, tell_store: bool = False) -> T:
    """Run `work` on the store; a store that cannot be reached is one line (exit 1). With
    `tell_store`, say on stderr which store it was (a key is only good for that store)."""
    settings = _settings()

    async def run() -> T:
        runtime = await Runtime.start(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        result = asyncio.run(run())
    except Exception as error:
        failure = dependency_error(error, settings)
        if failure is None:
            raise
        _cannot_start(failure)
    if tell_store:
        typer.echo(f"store: {describe_store(settings)}", err=True)
    return result


def _print(data: object, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(data) if as_json else text)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default PARTNER_GATEWAY_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default PARTNER_GATEWAY_PORT).")] = None,
    role: Annotated[
        str | None, typer.Option(help="all (default), api or worker (default PARTNER_GATEWAY_ROLE).")
    ] = None,
) -> None:
    """Run the gateway: partner API and delivery workers (and, with nothing configured, the
    built-in simulators), or only the API or only the workers of a cluster."""
    from partner_gateway.process import serve as serve_gateway

    overrides = {k: v for k, v in (("host", host), ("port", port), ("role", role)) if v is not None}
    settings = _settings(**overrides)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("partner_gateway").info("store: %s", describe_store(settings))
    try:
        _run(serve_gateway(settings))
    except OSError as error:
        if error.errno == errno.EADDRINUSE or isinstance(error, PermissionError):
            _cannot_start(listen_error(error, settings.host, settings.port))
        failure = dependency_error(error, settings)
        if failure is None:
            raise
        _cannot_start(failure)
    except Exception as error:
        failure = dependency_error(error, settings)
        if failure is None:
            raise
        _cannot_start(failure)


simulate_app = typer.Typer(help="Run a simulator alone.", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")


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

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = SmscConfig(
        host=host,
        port=port,
        system_id=system_id,
        password=password,
        receipt_delay_min_seconds=receipt_delay / 2,
        receipt_delay_max_seconds=max(receipt_delay, 0.001),
        max_throughput=max_throughput,
    )
    _run(serve_forever(config))


def _run(work: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        _loop_runner()(work)


def _loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop's runner, or asyncio's where uvloop is not built. Only the import falls back: an
    ImportError raised while running (a database driver's, say) must not run the spent
    coroutine a second time."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        return asyncio.run
    return uvloop.run


@app.command()
def migrate() -> None:
    """Create the schema, or upgrade it to this version's."""
    from partner_gateway.store.migrate import current_revision

    revision = _with_runtime(lambda runtime: current_revision(runtime.database))
    typer.echo(f"schema at revision {revision}")


@company_app.command("create")
def company_create(name: str, as_json: JsonFlag = False) -> None:
    """Create a company and its first API key (shown once)."""

    async def work(runtime: Runtime) -> dict[str, str]:
        now = now_ms()
        async with runtime.database.write() as connection:
            repository = CompanyRepository(connection)
            company = await repository.create(name, now)
            issued = await repository.issue_key(company.id, now, label="initial")
        return {"companyId": company.id, "apiKey": issued.plain_key, "apiKeyId": issued.info.id}

    result = _with_runtime(work, tell_store=True)
    _print(
        result,
        as_json,
        f"company {result['companyId']}\napi key {result['apiKey']} (id {result['apiKeyId']}); "
        "it is shown only now",
    )


@company_app.command("callbacks")
def company_callbacks(
    company_id: str,
    url: Annotated[
        str | None, typer.Option(help="The default callback URL (absolute http(s), public host).")
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the default URL (the secret stays).")
    ] = False,
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="Make a new signing secret; the old one signs for 24 h.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Set a company's callback URL (SPEC §5); the signing secret, when this makes one, is shown
    once. With neither --url nor --clear the URL stays as it is."""
    from partner_gateway.callbacks.urls import RefusedUrl
    from partner_gateway.store.repositories.callback_settings import CallbackSettingsRepository

    if url is not None and clear:
        _fail("give --url or --clear, not both", as_json)

    async def work(runtime: Runtime) -> dict[str, object] | str:
        if url is not None:
            try:
                await runtime.callback_urls.check(url)
            except RefusedUrl as refused:
                return f"the URL {refused.reason}"
        async with runtime.database.write() as connection:
            if await CompanyRepository(connection).get(company_id) is None:
                return f"no company {company_id!r}"
            repository = CallbackSettingsRepository(connection, runtime.callback_secrets)
            current = await repository.get(company_id)
            wanted = None if clear else url if url is not None else current.url if current else None
            if current is not None and wanted == current.url and not rotate_secret and not clear:
                return {"url": current.url, "secretSet": current.secret_set}  # nothing to change
            change = await repository.set_url(company_id, wanted, now_ms(), rotate_secret=rotate_secret)
        answer: dict[str, object] = {"url": change.settings.url, "secretSet": change.settings.secret_set}
        if change.new_secret is not None:
            answer["secret"] = change.new_secret
        return answer

    result = _with_runtime(work)
    if isinstance(result, str):
        _fail(result, as_json)
    text = f"callback URL {result['url'] or '(none)'}"
    if "secret" in result:
        text += f"\nsigning secret {result['secret']}; it is shown only now"
    elif not result["secretSet"]:
        text += "\nno signing secret yet (one is made with the first URL)"
    _print(result, as_json, text)


@apikey_app.command("create")
def apikey_create(
    company: Annotated[str, typer.Option("--company", help="Company id")],
    label: Annotated[str | None, typer.Option(help="A note to tell keys apart")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Issue another key for a company (shown once)."""

    async def work(runtime: Runtime) -> dict[str, str] | None:
        async with runtime.database.write() as connection:
            repository = CompanyRepository(connection)
            if await repository.get(company) is None:
                return None
            issued = await repository.issue_key(company, now_ms(), label=label)
        return {"companyId": company, "apiKey": issued.plain_key, "apiKeyId": issued.info.id}

    result = _with_runtime(work, tell_store=True)
    if result is None:
        _fail(f"no company {company!r}", as_json)
        return
    _print(result, as_json, f"api key {result['apiKey']} (id {result['apiKeyId']}); it is shown only now")


@apikey_app.command("list")
def apikey_list(
    company: Annotated[str, typer.Option("--company", help="Company id")],
    as_json: JsonFlag = False,
) -> None:
    """List a company's keys (never the keys themselves: only their prefixes)."""

    async def work(runtime: Runtime) -> list[dict[str, str | None]] | None:
        async with runtime.database.read() as connection:
            repository = CompanyRepository(connection)
            if await repository.get(company) is None:
                return None
            keys = await repository.list_keys(company)
        return [
            {
                "apiKeyId": key.id,
                "prefix": key.prefix,
                "label": key.label,
                "createdAt": format_ms(key.created_at),
                "revokedAt": format_ms(key.revoked_at) if key.revoked_at is not None else None,
            }
            for key in keys
        ]

    result = _with_runtime(work)
    if result is None:
        _fail(f"no company {company!r}", as_json)
        return
    lines = [
        f"{k['apiKeyId']}  {k['prefix']}…  {k['label'] or '-'}  created {k['createdAt']}"
        + (f"  REVOKED {k['revokedAt']}" if k["revokedAt"] else "")
        for k in result
    ]
    _print(result, as_json, "\n".join(lines) or "no keys")


@apikey_app.command("revoke")
def apikey_revoke(key_id: str, as_json: JsonFlag = False) -> None:
    """Revoke a key: requests with it are refused from now on."""

    async def work(runtime: Runtime) -> bool:
        async with runtime.database.write() as connection:
            return await CompanyRepository(connection).revoke_key(key_id, now_ms())

    if not _with_runtime(work):
        _fail(f"no active key {key_id!r}", as_json)
        return
    _print({"apiKeyId": key_id, "revoked": True}, as_json, f"revoked {key_id}")


LimitOption = Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")]
NO_BROKER = 2  # exit code: the command cannot run here at all (no broker configured)


def _with_queue(work: Callable[[RabbitWorkQueue], Awaitable[T]], as_json: bool) -> T:
    """Run `work` against the cluster's work queue; exit 2 when none is configured, 1 when the
    broker cannot be reached."""
    from partner_gateway.dispatch.queues.rabbitmq import RabbitWorkQueue

    url = _settings().amqp_url
    if url is None or not url.get_secret_value():
        _fail(
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
        _fail(str(error), as_json)
    except (OSError, TimeoutError) as error:  # the connection broke off mid-way
        _fail(f"RabbitMQ: {type(error).__name__}: {error}", as_json)


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
    _print(result, as_json, "\n".join(lines) or "no dead letters")


@dlq_app.command("replay")
def dlq_replay(limit: LimitOption = 100, as_json: JsonFlag = False) -> None:
    """Move dead letters back to their channel's queue, for the workers to try again. Undecodable
    ones stay (they would only come straight back)."""

    async def work(queue: RabbitWorkQueue) -> int:
        return await queue.replay_dead_letters(limit)

    replayed = _with_queue(work, as_json)
    _print({"replayed": replayed}, as_json, f"replayed {replayed} dead letters")


def _fail(message: str, as_json: bool, code: int = 1) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def main() -> None:
    app(prog_name="partner-gateway")


if __name__ == "__main__":
    main()
