"""What metrics and the access log cost on the single look-up: on and off side by side, in one run.

Three `partner-gateway serve --role api` processes share one seeded SQLite store, each on its own
port, pinned to the same CPU (only the one under load works):

    on          metrics on (the default), access log not written (log level WARNING, the bench's)
    off         PARTNER_GATEWAY_METRICS_ENABLED=false
    access-log  metrics on and the access log written (log level INFO, to the process's log file)

wrk loads `GET /messages/status/{id}?channel=...` (a different message each request, as
bench/run.py's `single`) on each in turn, on, off, access-log, on, off, ... for `--rounds`
rounds, so the machine's drift spreads over all three. Every round's figure is reported; the
cost is the median of "on" against the median of "off".

On a machine others share, wrk's figures move by more than the cost measured, so the same three
variants also run in one process, without the network: the app is called through ASGI itself,
blocks of `IN_PROCESS_BLOCK` look-ups per variant in turn, and each variant's figure is its
median time per look-up (CPU time of this process, so other processes' load counts less).

    .venv/bin/python bench/observability.py                 # 200,000 messages, 3 rounds of 10 s: about 2.5 min
    .venv/bin/python bench/observability.py --smoke         # does it still run? (20,000 messages, 1 s)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, BenchError, free_port, gateway_env, log, run_cli
from lookups import build_scenarios, check_first, id_pools
from seeding import Company, seed_sqlite
from servers import GatewayServer
from stores import sqlite_store
from wrk import LUA_SCRIPT, Load, failures, require_wrk, run_wrk, write_requests

VARIANTS = {
    "on": {},
    "off": {"PARTNER_GATEWAY_METRICS_ENABLED": "false"},
    "access-log": {"PARTNER_GATEWAY_LOG_LEVEL": "INFO"},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    if args.smoke:
        args.messages, args.duration, args.warmup, args.rounds, args.connections = 20_000, 1, 0, 1, 8
    require_wrk()
    two_cpus = (os.cpu_count() or 1) >= 2
    server_cpu, wrk_cpu = (1, 0) if two_cpus else (None, None)
    workdir = Path(tempfile.mkdtemp(prefix="pgw-bench-observability-"))
    servers: dict[str, GatewayServer] = {}
    try:
        store = sqlite_store(workdir / "data")
        cli_env = gateway_env(store.data_dir, 0)
        run_cli(["migrate"], cli_env, workdir)
        created = json.loads(run_cli(["company", "create", "bench-big", "--json"], cli_env, workdir))
        company = Company(created["companyId"], "bench-big", created["apiKey"])
        seed_sqlite(store.sqlite_path, [company], args.messages, 1.0, 90)
        reader = store.reader()
        scenario = build_scenarios(reader, company, id_pools(reader, company), 0.9, ["single"])["single"]
        reader.close()
        requests = write_requests(workdir / "single.requests", scenario.requests)
        script = workdir / "bench.lua"
        script.write_text(LUA_SCRIPT)
        for name, extra in VARIANTS.items():
            port = free_port()
            env = gateway_env(store.data_dir, port, extra=extra)
            servers[name] = GatewayServer(env, workdir, port, server_cpu, "api", f"gateway-{name}")
        for server in servers.values():
            server.wait_ready()
            check_first(server.port, scenario, company.api_key)
        figures: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
        for round_ in range(1, args.rounds + 1):
            for name, server in servers.items():
                common: dict[str, Any] = {
                    "port": server.port,
                    "api_key": company.api_key,
                    "script": script,
                    "connections": args.connections,
                    "max_requests": 0,
                    "cpu": wrk_cpu,
                    "load": Load(paths_file=requests),
                }
                if args.warmup > 0:
                    run_wrk(duration=args.warmup, **common)
                measured = run_wrk(duration=args.duration, **common)
                problem = failures(measured)
                if problem:
                    raise BenchError(f"{name}: {problem}")
                server.wait_idle(server.port)
                latency = measured["latency_us"]
                figure = {
                    "round": round_,
                    "requests_per_second": round(measured["requests_per_second"]),
                    "p50_ms": round(latency["p50"] / 1000, 2),
                    "p99_ms": round(latency["p99"] / 1000, 2),
                }
                figures[name].append(figure)
                log(f"round {round_} {name}: {figure}")
        for server in servers.values():
            server.check_alive()
        for server in servers.values():
            server.stop()
        report = summarize(args, figures)
        ids = [line.split("/status/")[1].split("?")[0] for line in scenario.requests]
        channels = [line.rsplit("channel=", 1)[1] for line in scenario.requests]
        report["in_process"] = asyncio.run(
            in_process(store.data_dir, company.api_key, list(zip(ids, channels, strict=True)), args, workdir)
        )
        print(render(report))
        if not args.smoke:
            out = REPO / "bench" / "results" / f"observability-sqlite-{dt.date.today().isoformat()}.json"
            out.write_text(json.dumps(report, indent=2) + "\n")
            log(f"wrote {out}")
        return 0
    finally:
        for server in servers.values():
            server.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


IN_PROCESS_BLOCK = 2000


async def in_process(
    data_dir: Path, api_key: str, messages: list[tuple[str, str]], args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """µs of CPU per single look-up through each variant's app, blocks alternated."""
    from partner_gateway.api.app import create_app
    from partner_gateway.config import Settings
    from partner_gateway.observability.logs import configure_logging, flush_access_log
    from partner_gateway.runtime import Runtime

    log_file = (workdir / "in-process-access.log").open("w")
    configure_logging("INFO", "text", log_file)
    base = Settings(data_dir=data_dir)
    variants = {
        "on": base.model_copy(update={"access_log": False}),
        "off": base.model_copy(update={"access_log": False, "metrics_enabled": False}),
        "access-log": base,
    }
    runtime = await Runtime.start(base)
    apps = {name: create_app(settings, runtime) for name, settings in variants.items()}
    headers = [(b"authorization", f"Bearer {api_key}".encode()), (b"host", b"bench")]
    answered: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answered.append(message["status"])

    def scope(message_id: str, channel: str) -> dict[str, Any]:
        return {
            "type": "http",
            "method": "GET",
            "path": f"/partner-gateway/v1/messages/status/{message_id}",
            "query_string": f"channel={channel}".encode(),
            "headers": headers,
            "client": ("127.0.0.1", 50_000),
        }

    scopes = [scope(message_id, channel) for message_id, channel in messages]
    blocks = 3 if args.smoke else 15
    timings: dict[str, list[float]] = {name: [] for name in variants}
    index = 0
    try:
        for _ in range(blocks):
            for name, app in apps.items():
                began = time.process_time()
                for _ in range(IN_PROCESS_BLOCK):
                    await app(scopes[index % len(scopes)], receive, send)
                    index += 1
                timings[name].append((time.process_time() - began) / IN_PROCESS_BLOCK * 1e6)
                flush_access_log()
    finally:
        await runtime.close()
        log_file.close()
    if set(answered) != {200}:
        raise BenchError(f"in-process look-ups answered {sorted(set(answered))}, not only 200")
    medians = {name: round(statistics.median(values), 1) for name, values in timings.items()}
    return {
        "block": IN_PROCESS_BLOCK,
        "blocks": blocks,
        "us_per_lookup_median": medians,
        "us_per_lookup_blocks": {name: [round(v, 1) for v in values] for name, values in timings.items()},
        "metrics_cost_percent": round(100 * (medians["on"] / medians["off"] - 1), 1),
        "access_log_cost_percent": round(100 * (medians["access-log"] / medians["on"] - 1), 1),
    }


def summarize(args: argparse.Namespace, figures: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    medians = {
        name: statistics.median(f["requests_per_second"] for f in rounds) for name, rounds in figures.items()
    }
    return {
        "what": "GET /messages/status/{id}, role api, SQLite",
        "messages": args.messages,
        "duration_s": args.duration,
        "connections": args.connections,
        "rounds": figures,
        "median_requests_per_second": medians,
        "metrics_cost_percent": round(100 * (1 - medians["on"] / medians["off"]), 1),
        "access_log_cost_percent": round(100 * (1 - medians["access-log"] / medians["on"]), 1),
    }


def render(report: dict[str, Any]) -> str:
    rows = [
        "| variant | "
        + " | ".join(f"round {i + 1}" for i in range(len(report["rounds"]["on"])))
        + " | median |"
    ]
    rows.append("|---" * (len(report["rounds"]["on"]) + 2) + "|")
    for name, rounds in report["rounds"].items():
        cells = [f"{f['requests_per_second']:,} req/s (p99 {f['p99_ms']} ms)" for f in rounds]
        rows.append(
            f"| {name} | " + " | ".join(cells) + f" | {report['median_requests_per_second'][name]:,.0f} |"
        )
    rows.append("")
    rows.append(
        f"metrics cost: {report['metrics_cost_percent']} % (on against off); "
        f"access log: {report['access_log_cost_percent']} % more (written against not)"
    )
    inner = report.get("in_process")
    if inner:
        rows.append("")
        rows.append(
            f"in process, µs of CPU per look-up (median of {inner['blocks']} blocks of {inner['block']}):"
        )
        rows += [f"  {name}: {value} µs" for name, value in inner["us_per_lookup_median"].items()]
        rows.append(
            f"  metrics cost {inner['metrics_cost_percent']} %, access log {inner['access_log_cost_percent']} % more"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
