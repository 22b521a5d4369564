"""`partner-gateway company callbacks`: set, rotate, clear, refusals, as scripts use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import cli

URL = "https://93.184.216.34/cb"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def company(env: dict[str, str]) -> str:
    return str(json.loads(cli(env, "company", "create", "Acme", "--json").stdout)["companyId"])


def callbacks(env: dict[str, str], *args: str) -> dict[str, object]:
    return dict(json.loads(cli(env, "company", "callbacks", *args, "--json").stdout))


def test_set_rotate_clear(env: dict[str, str], company: str) -> None:
    first = callbacks(env, company, "--url", URL)
    secret = first.pop("secret")
    assert isinstance(secret, str)
    assert secret.startswith("whsec_")
    assert first == {"url": URL, "secretSet": True}
    assert callbacks(env, company) == {"url": URL, "secretSet": True}
    assert callbacks(env, company, "--url", URL + "/2") == {"url": URL + "/2", "secretSet": True}
    rotated = callbacks(env, company, "--rotate-secret")
    assert rotated["url"] == URL + "/2"
    assert rotated["secret"] != secret
    assert callbacks(env, company, "--clear") == {"url": None, "secretSet": True}


def test_human_output_shows_the_secret_once(env: dict[str, str], company: str) -> None:
    output = cli(env, "company", "callbacks", company, "--url", URL).stdout
    assert f"callback URL {URL}" in output
    assert "whsec_" in output
    assert "shown only now" in output
    assert "whsec_" not in cli(env, "company", "callbacks", company).stdout


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9000/cb", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://localhost:9000/cb", "loopback"),
        ("ftp://93.184.216.34/", "absolute http or https"),
    ],
)
def test_refused_urls_fail_cleanly(env: dict[str, str], company: str, url: str, reason: str) -> None:
    result = cli(env, "company", "callbacks", company, "--url", url, "--json", check=False)
    assert result.returncode == 1
    assert reason in json.loads(result.stdout)["error"]
    assert callbacks(env, company) == {"url": None, "secretSet": False}


def test_private_networks_when_allowed(env: dict[str, str], company: str) -> None:
    allowed = {**env, "PARTNER_GATEWAY_CALLBACK_ALLOW_PRIVATE_NETWORKS": "true"}
    assert (
        callbacks(allowed, company, "--url", "http://localhost:9000/cb")["url"] == "http://localhost:9000/cb"
    )


def test_unknown_company_and_conflicting_options(env: dict[str, str], company: str) -> None:
    result = cli(env, "company", "callbacks", "cmp_nope", "--url", URL, check=False)
    assert result.returncode == 1
    assert "no company" in result.stderr
    assert "Traceback" not in result.stderr
    both = cli(env, "company", "callbacks", company, "--url", URL, "--clear", check=False)
    assert both.returncode == 1
    assert "not both" in both.stderr


def test_a_configured_key_seals_the_secrets(env: dict[str, str], company: str) -> None:
    keyed = {**env, "PARTNER_GATEWAY_CALLBACK_SECRET_KEY": "an operator's key"}
    assert "secret" in callbacks(keyed, company, "--url", URL)
    assert "secret" in callbacks(keyed, company, "--rotate-secret")
