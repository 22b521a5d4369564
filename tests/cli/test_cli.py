"""The command line, as scripts use it: JSON out, non-zero exit on failure, any fresh store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data")}


def test_migrate_on_a_fresh_store_and_again(env: dict[str, str]) -> None:
    first = cli(env, "migrate")
    assert "schema at revision" in first.stdout
    assert cli(env, "migrate").stdout == first.stdout


def test_company_create_prints_id_and_key_once(env: dict[str, str]) -> None:
    created = json.loads(cli(env, "company", "create", "Acme Ltd", "--json").stdout)
    assert created["companyId"].startswith("cmp_")
    assert created["apiKey"].startswith("pgw_")
    listed = cli(env, "apikey", "list", "--company", created["companyId"], "--json").stdout
    assert created["apiKey"] not in listed
    keys = json.loads(listed)
    assert [key["apiKeyId"] for key in keys] == [created["apiKeyId"]]
    assert created["apiKey"].startswith(keys[0]["prefix"])


def test_key_rotation_and_revocation(env: dict[str, str]) -> None:
    company = json.loads(cli(env, "company", "create", "Acme", "--json").stdout)["companyId"]
    second = json.loads(
        cli(env, "apikey", "create", "--company", company, "--label", "rotation", "--json").stdout
    )
    assert second["apiKey"].startswith("pgw_")
    revoked = json.loads(cli(env, "apikey", "revoke", second["apiKeyId"], "--json").stdout)
    assert revoked == {"apiKeyId": second["apiKeyId"], "revoked": True}
    keys = json.loads(cli(env, "apikey", "list", "--company", company, "--json").stdout)
    assert [key["revokedAt"] is not None for key in keys] == [False, True]
    again = cli(env, "apikey", "revoke", second["apiKeyId"], "--json", check=False)
    assert again.returncode == 1
    assert "error" in json.loads(again.stdout)


def test_unknown_company_fails_cleanly(env: dict[str, str]) -> None:
    for args in (("apikey", "create", "--company", "cmp_nope"), ("apikey", "list", "--company", "cmp_nope")):
        result = cli(env, *args, check=False)
        assert result.returncode == 1
        assert "no company" in result.stderr
        assert "Traceback" not in result.stderr


def test_human_output_without_json(env: dict[str, str]) -> None:
    output = cli(env, "company", "create", "Acme").stdout
    assert output.startswith("company cmp_")
    assert "shown only now" in output


def test_version(env: dict[str, str]) -> None:
    from importlib.metadata import version

    assert cli(env, "--version").stdout == f"partner-gateway {version('partner-gateway')}\n"


def test_operators_list_and_show_companies_and_any_message(env: dict[str, str]) -> None:
    acme = json.loads(cli(env, "company", "create", "Acme Ltd", "--json").stdout)
    other = json.loads(cli(env, "company", "create", "Other", "--json").stdout)
    listed = json.loads(cli(env, "company", "list", "--json").stdout)
    assert [(c["companyId"], c["name"], c["activeKeys"]) for c in listed] == [
        (acme["companyId"], "Acme Ltd", 1),
        (other["companyId"], "Other", 1),
    ]
    assert cli(env, "company", "list").stdout.startswith(f"{acme['companyId']}  Acme Ltd")
    shown = json.loads(cli(env, "company", "show", acme["companyId"], "--days", "1", "--json").stdout)
    assert (shown["companyId"], shown["days"], shown["messages"], shown["traffic"]) == (
        acme["companyId"],
        1,
        0,
        {},
    )
    missing = cli(env, "company", "show", "cmp_nope", check=False)
    assert (missing.returncode, missing.stderr) == (1, "error: no company 'cmp_nope'\n")
    unknown = cli(env, "messages", "show", "msg_nope", "--json", check=False)
    assert (unknown.returncode, json.loads(unknown.stdout)) == (1, {"error": "no message 'msg_nope'"})


def test_help_reads_as_sentences(env: dict[str, str]) -> None:
    """Docstrings' line breaks do not leak into the help."""
    text = cli(env, "--help").stdout
    assert "or only the API or" in " ".join(text.replace("│", " ").split())


def test_serve_help_shows_the_real_defaults(env: dict[str, str]) -> None:
    text = " ".join(cli(env, "serve", "--help").stdout.replace("│", " ").split())
    assert "PARTNER_GATEWAY_PORT, else 8080" in text
    assert "PARTNER_GATEWAY_HOST, else 127.0.0.1" in text
