"""The look-up scenarios: status of one message, batches of 100 and 500, a query of 5,000, history.

Each :class:`Scenario` is a list of different requests (wrk rotates through them, so no cache
flatters a figure) and a check of the answer to the first one (the run stops on a wrong answer).
Ids and history positions are read back from the seeded store; cursors are made the way the
gateway makes them.

This file used to be the whole look-up benchmark. It still runs that subset:

    .venv/bin/python bench/lookups.py [--smoke]   # = bench/run.py --scenarios health,single,batch_500,...

and re-exports the helpers it used to define (``log``, ``free_port``, ``run_wrk``, ``Server``, ...)
for scripts that import them from here. The whole suite is bench/run.py.
"""

from __future__ import annotations

import random
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common import (
    BASE,
    REPO,
    SEED,
    BenchError,
    free_port,
    gateway_env,
    gateway_executable,
    http_get,
    http_request,
    log,
    run_cli,
)
from machine import machine_facts
from seeding import CHANNELS, Company, message_rows
from servers import GatewayServer, Server
from stores import Reader
from wrk import LUA_SCRIPT, post_line, require_wrk, run_wrk, wrk_version

__all__ = [
    "BASE",
    "LUA_SCRIPT",
    "REPO",
    "SEED",
    "BenchError",
    "Company",
    "GatewayServer",
    "Scenario",
    "Server",
    "build_scenarios",
    "free_port",
    "gateway_env",
    "gateway_executable",
    "health_scenario",
    "http_get",
    "http_request",
    "log",
    "machine_facts",
    "message_rows",
    "require_wrk",
    "run_cli",
    "run_wrk",
    "wrk_version",
]

LOOKUP_SCENARIOS = (
    "health",
    "single",
    "batch_100",
    "batch_500",
    "query_5000",
    "history_first",
    "history_deep",
)
POOL_PER_CHANNEL = 50_000
DISTINCT_BATCHES = 300
DISTINCT_QUERIES = 20
DISTINCT_CURSORS = 256
PAGE = 100

Check = Callable[[int, Any], "str | None"]  # (status, body) -> a problem, or None


@dataclass
class Scenario:
    name: str
    label: str
    requests: list[str]  # lines of a wrk requests file: GET paths or POST lines
    first: tuple[str, str, Any]  # (method, path, body) of the request that is checked
    check: Check
    notes: dict[str, Any] = field(default_factory=dict)
    authenticated: bool = True


STATUS_FIELDS = frozenset(
    {
        "customerMessageId",
        "channel",
        "to",
        "reference",
        "deliveryStatus",
        "deliveryStatusDescription",
        "errorCode",
        "createdAt",
        "updatedAt",
    }
)


def expect_status_item(item: Any, message_id: str | None, channel: str | None) -> str | None:
    """The problem with one DeliveryStatusResponse, or None."""
    if not isinstance(item, dict):
        return f"expected a DeliveryStatusResponse object, got {type(item).__name__}"
    missing = STATUS_FIELDS - item.keys()
    if missing:
        return f"DeliveryStatusResponse lacks {sorted(missing)}"
    if message_id is not None and item["customerMessageId"] != message_id:
        return f"expected {message_id}, got {item['customerMessageId']}"
    if channel is not None and item["channel"] != channel:
        return f"expected channel {channel}, got {item['channel']}"
    return None


def expect_status_list(body: Any, ids: Sequence[str], channel: str) -> str | None:
    """A batch answer: exactly the ids asked for (all exist), each a well-formed item."""
    if not isinstance(body, list) or len(body) != len(ids):
        size = len(body) if isinstance(body, list) else "-"
        return f"expected a list of {len(ids)}, got {type(body).__name__} of {size}"
    if {item.get("customerMessageId") for item in body if isinstance(item, dict)} != set(ids):
        return "the answer does not hold exactly the ids asked for"
    return next((p for p in (expect_status_item(i, None, channel) for i in body) if p), None)


def expect_page(body: Any, expected_first: str) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return f"expected {{items, nextCursor}}, got {str(body)[:200]}"
    items = body["items"]
    if len(items) != PAGE:
        return f"expected {PAGE} items, got {len(items)}"
    if not body.get("nextCursor"):
        return "expected a nextCursor"
    stamps = [(i["createdAt"], i["customerMessageId"]) for i in items]
    if stamps != sorted(stamps, reverse=True):
        return "items are not newest first"
    return expect_status_item(items[0], expected_first, None)


def id_pools(reader: Reader, company: Company) -> dict[str, list[str]]:
    """Up to POOL_PER_CHANNEL random ids of `company` per channel."""
    return {
        channel: [
            row[0]
            for row in reader.fetchall(
                "SELECT id FROM messages WHERE company_id = ? AND channel = ? ORDER BY random() LIMIT ?",
                company.id,
                channel,
                POOL_PER_CHANNEL,
            )
        ]
        for channel in CHANNELS
    }


def build_scenarios(
    reader: Reader,
    big: Company,
    pools: dict[str, list[str]],
    deep_fraction: float,
    names: Sequence[str] = LOOKUP_SCENARIOS,
) -> dict[str, Scenario]:
    """The look-up scenarios named, for the big company of a seeded store."""
    rng = random.Random(SEED + 1)
    builders: dict[str, Callable[[], Scenario]] = {
        "health": health_scenario,
        "single": lambda: _single(rng, pools),
        "batch_100": lambda: _batch(rng, pools, 100),
        "batch_500": lambda: _batch(rng, pools, 500),
        "query_5000": lambda: _query(rng, pools, 5000),
        "history_first": lambda: _history_first(reader, big),
        "history_deep": lambda: _history_deep(reader, big, deep_fraction),
    }
    return {name: builders[name]() for name in names if name in builders}


def health_scenario() -> Scenario:
    """GET /health: no key, no store; the same body the raw ASGI app answers."""

    def check(status: int, body: Any) -> str | None:
        return None if body == {"status": "ok"} else f"expected {{'status': 'ok'}}, got {body!r}"

    return Scenario(
        "health", "GET /health", ["/health"], ("GET", "/health", None), check, authenticated=False
    )


def _single(rng: random.Random, pools: dict[str, list[str]]) -> Scenario:
    singles = [(mid, ch) for ch, ids in pools.items() for mid in ids]
    rng.shuffle(singles)
    paths = [f"{BASE}/messages/status/{mid}?channel={ch}" for mid, ch in singles]
    first_id, first_channel = singles[0]
    return Scenario(
        "single",
        "status, one id",
        paths,
        ("GET", paths[0], None),
        lambda status, body: expect_status_item(body, first_id, first_channel),
        {"distinct_ids": len(paths)},
    )


def _channels_with(pools: dict[str, list[str]], size: int) -> list[str]:
    channels = [ch for ch in CHANNELS if len(pools[ch]) >= size]
    if not channels:
        raise BenchError(f"no channel has {size} messages of the big company: seed more")
    return channels


def _batch(rng: random.Random, pools: dict[str, list[str]], size: int) -> Scenario:
    """GET ?ids=...: ids of one channel each, channels in turn, unique within a batch."""
    channels = _channels_with(pools, size)
    picks = [channels[i % len(channels)] for i in range(DISTINCT_BATCHES)]
    batches = [(channel, rng.sample(pools[channel], size)) for channel in picks]
    paths = [f"{BASE}/messages/status?ids={','.join(ids)}&channel={ch}" for ch, ids in batches]
    first_channel, first_ids = batches[0]
    return Scenario(
        f"batch_{size}",
        f"status, batch of {size} (GET)",
        paths,
        ("GET", paths[0], None),
        lambda status, body: expect_status_list(body, first_ids, first_channel),
        {"distinct_batches": len(paths), "channels": channels, "target_bytes_max": max(map(len, paths))},
    )


def _query(rng: random.Random, pools: dict[str, list[str]], size: int) -> Scenario:
    """POST /messages/status/query with `size` ids in the body."""
    channels = _channels_with(pools, size)
    path = f"{BASE}/messages/status/query"
    picks = [channels[i % len(channels)] for i in range(DISTINCT_QUERIES)]
    queries = [(channel, rng.sample(pools[channel], size)) for channel in picks]
    bodies = [{"channel": channel, "ids": ids} for channel, ids in queries]
    first_channel, first_ids = queries[0]
    return Scenario(
        f"query_{size}",
        f"status, query of {size} (POST)",
        [post_line(path, body) for body in bodies],
        ("POST", path, bodies[0]),
        lambda status, body: expect_status_list(body, first_ids, first_channel),
        {"distinct_bodies": len(bodies), "channels": channels},
    )


def _newest(reader: Reader, big: Company, offset: int) -> str:
    rows = reader.fetchall(
        "SELECT id FROM messages WHERE company_id = ? ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?",
        big.id,
        offset,
    )
    return str(rows[0][0])


def _history_first(reader: Reader, big: Company) -> Scenario:
    path = f"{BASE}/messages/history?limit={PAGE}"
    newest = _newest(reader, big, 0)
    return Scenario(
        "history_first",
        "history, first page",
        [path],
        ("GET", path, None),
        lambda status, body: expect_page(body, newest),
        {"company_messages": big.messages},
    )


def _history_deep(reader: Reader, big: Company, deep_fraction: float) -> Scenario:
    """Cursors as the gateway issues them, at up to DISTINCT_CURSORS depths from `deep_fraction` down."""
    from partner_gateway.api.cursor import CursorCodec
    from partner_gateway.api.history import _scope
    from partner_gateway.domain.messages import HistoryFilter, HistoryPosition

    key_rows = reader.fetchall("SELECT value FROM instance_secrets WHERE name = 'history-cursor'")
    if not key_rows:
        raise BenchError("no 'history-cursor' row in instance_secrets: did migrate run?")
    count = big.messages
    first_depth = int(count * deep_fraction)
    last_depth = max(first_depth, count - PAGE - 2)  # a full page (and a next one) after every cursor
    positions = reader.fetchall(
        "SELECT created_at, id FROM messages WHERE company_id = ?"
        " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        big.id,
        last_depth - first_depth + 1,
        first_depth,
    )
    expected_first = _newest(reader, big, first_depth + 1)
    codec = CursorCodec(bytes.fromhex(key_rows[0][0]))
    scope = _scope(HistoryFilter(company_id=big.id))
    stride = max(1, len(positions) // DISTINCT_CURSORS)
    paths, depths = [], []
    for offset in range(0, len(positions), stride)[:DISTINCT_CURSORS]:
        created_at, message_id = positions[offset]
        token = codec.encode(big.id, scope, HistoryPosition(created_at=created_at, message_id=message_id))
        paths.append(f"{BASE}/messages/history?limit={PAGE}&cursor={urllib.parse.quote(token, safe='')}")
        depths.append(first_depth + offset)
    return Scenario(
        "history_deep",
        f"history, page at depth {first_depth:,}",
        paths,
        ("GET", paths[0], None),
        lambda status, body: expect_page(body, expected_first),
        {
            "depth_min": depths[0],
            "depth_max": depths[-1],
            "distinct_cursors": len(paths),
            "company_messages": count,
        },
    )


def check_first(port: int, scenario: Scenario, api_key: str | None) -> None:
    """Ask the scenario's first request once; BenchError unless it answers 200 and the right shape."""
    method, path, body = scenario.first
    status, answer = http_request(port, method, path, api_key, body)
    problem = f"HTTP {status}: {str(answer)[:300]}" if status != 200 else scenario.check(status, answer)
    if problem:
        raise BenchError(f"scenario {scenario.name}: unexpected answer to {method} {path[:120]}…: {problem}")


def main(argv: Sequence[str] | None = None) -> int:
    """The old look-up benchmark: bench/run.py with the look-up scenarios only."""
    import run

    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith("--scenarios") for a in args):
        args += ["--scenarios", "raw_asgi,health,single,batch_500,history_first,history_deep,drivers"]
    if not any(a.startswith("--name") for a in args):
        args += ["--name", "lookups"]
    return run.main(args)


if __name__ == "__main__":
    sys.exit(main())
