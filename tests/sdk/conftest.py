"""The SDK against a real `partner-gateway serve` (the embedded default: its simulators, SQLite or
the suite's PostgreSQL), one for the SDK's tests, and a company of its own for each test."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest

from e2e_support import Gateway, serving_on_own_database
from sdk_support import SIMULATOR_PORTS, Company
from support import cli

SERVE_ENV = {
    # the tests' callback receiver listens on loopback (SPEC §5 refuses it otherwise)
    "PARTNER_GATEWAY_CALLBACK_ALLOW_PRIVATE_NETWORKS": "true",
    "PARTNER_GATEWAY_CALLBACK_RETRY_FIRST_SECONDS": "0.5",
    "PARTNER_GATEWAY_CALLBACK_RETRY_MAX_DELAY_SECONDS": "2",
    # a `company limits` change applies within this (2 s by default)
    "PARTNER_GATEWAY_RATE_LIMIT_REFRESH_SECONDS": "0.2",
    "PARTNER_GATEWAY_LOG_LEVEL": "WARNING",
    "PARTNER_GATEWAY_SIMULATOR_SMSC_PORT": str(SIMULATOR_PORTS["SMS"]),
    "PARTNER_GATEWAY_SIMULATOR_WHATSAPP_PORT": str(SIMULATOR_PORTS["WHATSAPP"]),
    "PARTNER_GATEWAY_SIMULATOR_RBM_PORT": str(SIMULATOR_PORTS["RCS"]),
}


_RUNNING = contextlib.ExitStack()  # the served gateway, stopped after the SDK's last test


@pytest.fixture(scope="session")
def sdk_gateway(tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None) -> Iterator[Gateway]:
    with _RUNNING:
        folder = tmp_path_factory.mktemp("sdk-gateway")
        yield _RUNNING.enter_context(serving_on_own_database(folder, postgres_url, "sdk", SERVE_ENV))


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the SDK's last test, stop its gateway rather than leave it idle through the rest of
    the session (a session fixture would live until the end)."""
    if nextitem is None or nextitem.path.parent != item.path.parent:
        _RUNNING.close()


@pytest.fixture
def company(sdk_gateway: Gateway) -> Company:
    created = json.loads(cli(sdk_gateway.env, "company", "create", "SDK Ltd", "--json").stdout)
    return Company(sdk_gateway, created["companyId"], created["apiKey"])
