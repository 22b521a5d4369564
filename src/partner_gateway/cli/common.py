"""What every command shares: settings read once with one-line errors, the store, output, the loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from partner_gateway.config import Settings
from partner_gateway.runtime import Runtime
from partner_gateway.startup import StartupError, dependency_error, describe_store, load_settings

T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]


def settings_or_exit(**overrides: Any) -> Settings:
    """The settings, or one line saying which variable is wrong (exit 2)."""
    try:
        return load_settings(**overrides)
    except StartupError as error:
        cannot_start(error)


def explain_or_raise(error: Exception, settings: Settings) -> NoReturn:
    """Exit with the one line for a start-up failure (startup.dependency_error); any other error
    is a bug and keeps its traceback."""
    failure = dependency_error(error, settings)
    if failure is None:
        raise error
    cannot_start(failure)


def cannot_start(error: StartupError) -> NoReturn:
    typer.echo(f"error: {error.message}", err=True)
    raise typer.Exit(code=error.exit_code)


def with_runtime(work: Callable[[Runtime], Awaitable[T]], *, tell_store: bool = False) -> T:
    """Run `work` on the store; a store that cannot be reached is one line (exit 1). With
    `tell_store`, say on stderr which store it was (a key is only good for that store)."""
    settings = settings_or_exit()

    async def run() -> T:
        runtime = await Runtime.start(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        result = asyncio.run(run())
    except Exception as error:
        explain_or_raise(error, settings)
    if tell_store:
        typer.echo(f"store: {describe_store(settings)}", err=True)
    return result


def show(data: object, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(data) if as_json else text)


def run_loop(work: Coroutine[Any, Any, None]) -> None:
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


def fail(message: str, as_json: bool, code: int = 1) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)
