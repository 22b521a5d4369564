"""`partner-gateway routes` and `carriers`, and the route table's checks at start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import bind_slots, carrier_stats
from partner_gateway.store.repositories.carrier_stats import CarrierSample
from support import cli


def carrier(name: str) -> dict[str, object]:
    return {"name": name, "host": "127.0.0.1", "system_id": "acme", "password": "pw"}


CARRIERS = json.dumps([carrier("uk-a"), carrier("uk-b"), carrier("bulk"), carrier("spare")])


@pytest.fixture
def env(tmp_path: Path, postgres_url: str | None) -> dict[str, str]:
    values = {"PARTNER_GATEWAY_DATA_DIR": str(tmp_path / "data"), "PARTNER_GATEWAY_SMPP_CARRIERS": CARRIERS}
    if postgres_url is not None:
        values["PARTNER_GATEWAY_DATABASE_URL"] = postgres_url
    return values


def test_routes_shows_the_table_in_force(env: dict[str, str]) -> None:
    table = [
        {"prefix": "+44", "failover": ["uk-a", "uk-b"]},
        {"prefix": "1", "split": {"uk-a": 70, "uk-b": 30}},
        {"prefix": "44", "company": "cmp_1", "sender": "ACME", "carrier": "uk-b"},
        {"carrier": "bulk"},
    ]
    env["PARTNER_GATEWAY_SMS_ROUTES"] = json.dumps(table)
    text = cli(env, "routes").stdout
    assert "  44 -> failover uk-a, uk-b\n" in text
    assert "  1 -> split uk-a 70%, uk-b 30%\n" in text
    assert "  44 company=cmp_1 sender=ACME -> carrier uk-b\n" in text
    assert "  * -> carrier bulk\n" in text
    assert "not routed (not bound): spare" in text
    data = json.loads(cli(env, "routes", "--json").stdout)
    assert data["source"] == "PARTNER_GATEWAY_SMS_ROUTES"
    assert data["routes"][1] == {
        "prefix": "1",
        "company": None,
        "sender": None,
        "kind": "split",
        "carriers": [{"name": "uk-a", "weight": 70.0}, {"name": "uk-b", "weight": 30.0}],
    }


def test_without_a_table_every_sms_goes_to_the_first_carrier(env: dict[str, str]) -> None:
    data = json.loads(cli(env, "routes", "--json").stdout)
    assert data == {
        "source": "default",
        "routes": [
            {
                "prefix": "",
                "company": None,
                "sender": None,
                "kind": "carrier",
                "carriers": [{"name": "uk-a", "weight": None}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("table", "words"),
    [
        (
            [{"prefix": "44", "carrier": "nope"}],
            "route 1 (44): unknown carrier nope; configured: bulk, spare, uk-a, uk-b",
        ),
        (
            [{"prefix": "44", "carrier": "uk-a"}, {"prefix": "+44", "carrier": "uk-b"}],
            "route 2 (44): same prefix, company and sender as route 1",
        ),
        ([{"split": {"uk-a": 1, "uk-b": 0}}], "route 1 (*): weights must be greater than 0"),
        ([{"prefix": "44"}], "route 44: give exactly one of carrier, split, failover (got none)"),
        (
            [{"prefix": "44", "carrier": "uk-a", "via": "x"}],
            "PARTNER_GATEWAY_SMS_ROUTES[0].via: Extra inputs",
        ),
        ([{"prefix": "4x", "carrier": "uk-a"}], "prefix must be digits"),
    ],
    ids=["unknown-carrier", "identical-prefix", "zero-weight", "no-target", "unknown-field", "not-digits"],
)
def test_a_table_that_cannot_be_used_stops_the_process_in_one_line(
    env: dict[str, str], table: list[dict[str, object]], words: str
) -> None:
    env["PARTNER_GATEWAY_SMS_ROUTES"] = json.dumps(table)
    for command in (("routes",), ("serve",)):
        result = cli(env, *command, check=False)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_routes_without_carriers_are_refused(tmp_path: Path) -> None:
    env = {"PARTNER_GATEWAY_DATA_DIR": str(tmp_path), "PARTNER_GATEWAY_SMS_ROUTES": '[{"carrier": "a"}]'}
    result = cli(env, "routes", check=False)
    assert result.returncode == 2
    assert "PARTNER_GATEWAY_SMS_ROUTES needs PARTNER_GATEWAY_SMPP_CARRIERS" in result.stderr


async def test_carriers_shows_binds_and_what_workers_reported(env: dict[str, str], runtime: Runtime) -> None:
    now = now_ms()
    async with runtime.database.write() as connection:
        await bind_slots.take(connection, "uk-a", 1, "gw-1-42-ab", now, 30_000)
        await carrier_stats.write(
            connection,
            CarrierSample(
                "uk-a",
                "gw-1-42-ab",
                "up",
                1,
                1,
                10,
                3,
                12.5,
                11.0,
                500,
                480,
                "The carrier asked us to slow down (ESME_RTHROTTLED)",
                now - 1000,
            ),
            now,
        )
        await carrier_stats.write(
            connection,
            CarrierSample("uk-b", "gw-0-1-dead", "down", 1, 0, 10, 0, 0, 0, 7, 7, None, None),
            now - 120_000,
        )
    text = cli(env, "carriers").stdout
    assert "uk-a (127.0.0.1:2775): 1 bind(s), window 10 per bind, throughput unlimited/s per bind" in text
    assert "  bind #1: gw-1-42-ab (held, since " in text
    assert (
        "  worker gw-1-42-ab: up, 1/1 bound, window 3/10 in use, 12.5 submits/s, 11 receipts/s (500 and 480"
        in text
    )
    assert "    last error " in text
    assert "ESME_RTHROTTLED" in text
    assert "worker gw-0-1-dead (stale: the worker stopped reporting): down" in text
    data = json.loads(cli(env, "carriers", "--json").stdout)
    by_name = {item["name"]: item for item in data["carriers"]}
    assert set(by_name) == {"uk-a", "uk-b", "bulk", "spare"}
    worker = by_name["uk-a"]["workers"][0]
    assert (worker["windowInUse"], worker["submitsPerSecond"], worker["stale"]) == (3, 12.5, False)
    assert by_name["uk-a"]["bindSlots"][0]["holder"] == "gw-1-42-ab"
    assert by_name["uk-b"]["workers"][0]["stale"] is True
    assert by_name["bulk"]["bindSlots"] == []
