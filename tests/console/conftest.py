"""The console's browser tests run against a real `partner-gateway serve` (the embedded default:
its simulators, SQLite or a PostgreSQL database of its own), one for the module."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from e2e_support import Gateway, serving_on_own_database

SERVE_ENV = {
    # Receipts after 8 s: the message page (polling every 2 s) shows SENT for several polls
    # before it turns DELIVERED, even on a loaded machine (at 3 s a late poll missed SENT once).
    "PARTNER_GATEWAY_SIMULATOR_RECEIPT_DELAY_SECONDS": "8",
    "PARTNER_GATEWAY_CALLBACK_ALLOW_PRIVATE_NETWORKS": "true",
    "PARTNER_GATEWAY_LOG_LEVEL": "WARNING",
}


@pytest.fixture(scope="module")
def console_gateway(tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None) -> Iterator[Gateway]:
    with served(tmp_path_factory, postgres_url, "console", SERVE_ENV) as gateway:
        yield gateway


@pytest.fixture
def api_role_gateway(tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None) -> Iterator[Gateway]:
    """`serve --role api`: an API process alone (no worker, no simulators)."""
    env = {"PARTNER_GATEWAY_ROLE": "api", "PARTNER_GATEWAY_LOG_LEVEL": "WARNING"}
    with served(tmp_path_factory, postgres_url, "console_api", env) as gateway:
        yield gateway


@contextlib.contextmanager
def served(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None, name: str, env: dict[str, str]
) -> Iterator[Gateway]:
    """`serve` with `env`, on SQLite or on a PostgreSQL database of its own."""
    with serving_on_own_database(
        tmp_path_factory.mktemp(f"{name}-gateway"), postgres_url, name, env
    ) as gateway:
        yield gateway
