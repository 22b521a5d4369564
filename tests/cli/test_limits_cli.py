"""`partner-gateway company limits`: show, set (both spellings), reset, refusals, as scripts use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import cli

DEFAULT_SENDS = {"perSecond": 100.0, "burst": 200, "default": True}
DEFAULT_READS = {"perSecond": 1000.0, "burst": 2000, "default": True}


@pytest.fixture
def env(tmp_path: Path, postgres_url: str | None) -> dict[str, str]:
    env = {"PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data")}
    if postgres_url:
        env["PARTNER_GATEWAY_DATABASE_URL"] = postgres_url
    return env


@pytest.fixture
def company(env: dict[str, str]) -> str:
    return str(json.loads(cli(env, "company", "create", "Acme", "--json").stdout)["companyId"])


def limits(env: dict[str, str], *args: str) -> dict[str, object]:
    return dict(json.loads(cli(env, "company", "limits", *args, "--json").stdout))


def test_show_set_and_reset(env: dict[str, str], company: str) -> None:
    shown = limits(env, company)
    assert shown == {
        "companyId": company,
        "sends": DEFAULT_SENDS,
        "reads": DEFAULT_READS,
        "enabled": True,
        "changed": False,
        "appliesWithinSeconds": 2.0,
    }
    changed = limits(env, company, "--sends", "50/120", "--reads-per-second", "300")
    assert changed["sends"] == {"perSecond": 50.0, "burst": 120, "default": False}
    assert changed["reads"] == {"perSecond": 300.0, "burst": 600, "default": False}
    assert changed["changed"] is True
    again = limits(env, company, "--sends-per-second", "0.5")  # reads stay as they were set
    assert again["sends"] == {"perSecond": 0.5, "burst": 1, "default": False}
    assert again["reads"] == changed["reads"]
    reset = limits(env, company, "--reset", "--reads", "5")
    assert (reset["sends"], reset["reads"]) == (
        DEFAULT_SENDS,
        {"perSecond": 5.0, "burst": 10, "default": False},
    )


def test_human_output_says_where_each_limit_comes_from(env: dict[str, str], company: str) -> None:
    output = cli(env, "company", "limits", company, "--reads", "20/40").stdout
    assert "sends  100 per second, bursts of 200 (the default)" in output
    assert "reads  20 per second, bursts of 40 (set for this company)" in output
    assert "apply it within 2 s" in output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--sends", "fast"], "--sends: 'fast' is not RATE or RATE/BURST"),
        (["--reads", "0"], "--reads: the rate must be more than 0"),
        (["--sends", "10/0"], "--sends: the burst must be"),
        (["--sends", "10", "--sends-per-second", "5"], "give --sends or --sends-per-second, not both"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(
    env: dict[str, str], company: str, args: list[str], says: str
) -> None:
    done = cli(env, "company", "limits", company, *args, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_unknown_company_is_refused(env: dict[str, str]) -> None:
    done = cli(env, "company", "limits", "cmp_nope", "--sends", "5", "--json", check=False)
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"error": "no company 'cmp_nope'"}


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("PARTNER_GATEWAY_RATE_LIMIT_SENDS_PER_SECOND", "0", "greater than 0"),
        ("PARTNER_GATEWAY_RATE_LIMIT_READS_BURST", "lots", "valid integer"),
        ("PARTNER_GATEWAY_RATE_LIMIT_REFRESH_SECONDS", "10", "less than or equal to 5"),
        ("PARTNER_GATEWAY_RATE_LIMIT_ENABLED", "perhaps", "valid boolean"),
    ],
)
def test_a_bad_limit_setting_is_one_line_naming_it(
    env: dict[str, str], variable: str, value: str, says: str
) -> None:
    done = cli({**env, variable: value}, "company", "limits", "cmp_any", check=False)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {variable}: ")
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
