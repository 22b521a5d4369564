"""A command that cannot start says why in one line and exits 2 (a setting) or 1 (a dependency)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from support import cli, free_port

UNREACHABLE = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/test"  # nothing listens there


@pytest.mark.parametrize(
    ("variable", "value", "code", "words"),
    [
        ("PORT", "abc", 2, "PARTNER_GATEWAY_PORT: Input should be a valid integer"),
        ("SMPP_CARRIERS", '[{"host": 1,}]', 2, "PARTNER_GATEWAY_SMPP_CARRIERS: not valid JSON (Expecting"),
        ("SMPP_CARRIERS", '[{"host": "h"}]', 2, "PARTNER_GATEWAY_SMPP_CARRIERS[0].system_id: Field required"),
        ("DATABASE_URL", "mysql://user@host/db", 2, "mysql:// is not a store the gateway runs on"),
        ("DATABASE_URL", "not a url", 2, "PARTNER_GATEWAY_DATABASE_URL: is not a database URL"),
        ("DATABASE_URL", "sqlite://", 2, "PARTNER_GATEWAY_DATABASE_URL: names no file"),
        ("DATABASE_URL", UNREACHABLE, 1, "cannot be reached: connection refused"),
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pgw_no_such_database", 1, "does not exist"),
        ("LOG_FORMAT", "xml", 2, "PARTNER_GATEWAY_LOG_FORMAT: Input should be 'text' or 'json'"),
        (
            "METRICS_ALLOWED_NETWORKS",
            "10.0.0.0/8,intranet",
            2,
            "PARTNER_GATEWAY_METRICS_ALLOWED_NETWORKS: 'intranet' is not a network such as 10.0.0.0/8",
        ),
    ],
    ids=[
        "port",
        "json",
        "nested-field",
        "scheme",
        "garbage-url",
        "sqlite-no-file",
        "unreachable",
        "unknown-db",
        "log-format",
        "metrics-networks",
    ],
)
def test_a_bad_setting_or_an_unreachable_store_is_one_line(
    tmp_path: Path, variable: str, value: str, code: int, words: str
) -> None:
    env = {"PARTNER_GATEWAY_DATA_DIR": str(tmp_path), f"PARTNER_GATEWAY_{variable}": value}
    for command in (("company", "create", "Acme"), ("migrate",)):
        result = cli(env, *command, check=False)
        assert result.returncode == code, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert words in result.stderr
        assert "Traceback" not in result.stderr
        assert "s3cret-pw" not in result.stderr


def test_serve_says_a_taken_port_and_an_unreachable_store_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"PARTNER_GATEWAY_DATA_DIR": str(tmp_path), "PARTNER_GATEWAY_PORT": str(port)}
        result = cli(env, "serve", check=False)
    assert result.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: the address is in use" in result.stderr
    assert "Traceback" not in result.stderr
    env = {"PARTNER_GATEWAY_DATABASE_URL": UNREACHABLE, "PARTNER_GATEWAY_PORT": str(free_port())}
    result = cli(env, "serve", check=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: the store at PostgreSQL {UNREACHABLE.split('@')[1]} cannot be reached: connection refused"
    ]
    assert "Traceback" not in result.stderr
    assert "s3cret-pw" not in result.stderr
