"""The benchmark suite: every figure of issue 6 (and issue 5's workers) next to its ceiling, in one run.

Per store (SQLite by default, PostgreSQL with `--store postgres`): seed a throw-away store, measure
the raw drivers in-process, the raw ASGI app and the gateway over HTTP with wrk on loopback, sends
and end-to-end delivery through an SMSC simulator, and on PostgreSQL + RabbitMQ delivery with one
and two worker processes. Prints a table per store, writes a JSON report to bench/results/ and the
tables to docs/performance.md. Every run is bounded in time and count. See bench/README.md.

    .venv/bin/python bench/run.py                      # SQLite, 1,000,000 messages
    .venv/bin/python bench/run.py --store postgres     # PostgreSQL (+ RabbitMQ for the workers)
    .venv/bin/python bench/run.py --smoke              # CI: 20,000 messages, 1 s per figure, no docs

No figure is asserted; a wrong answer (a status or shape other than expected) fails the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import REPO, BenchError, free_port, gateway_env, gateway_executable, log, run_cli
from drivers import DriverRate, measure_postgres, measure_sqlite
from lookups import LOOKUP_SCENARIOS, Scenario, build_scenarios, check_first, health_scenario, id_pools
from machine import machine_facts
from report import (
    Figure,
    assess,
    figure_dict,
    figures_of,
    postgres_against_sqlite,
    text_table,
    write_performance_md,
)
from seeding import Company, seed_postgres, seed_sqlite
from sending import SmscThread, check_send, wait_delivered
from servers import GatewayServer, ServerProcess, raw_asgi_server
from stores import DEFAULT_PG_ADMIN_DSN, RabbitVhost, Reader, Store, postgres_store, sqlite_store
from wrk import LUA_SCRIPT, Load, failures, require_wrk, run_wrk, write_requests

SCENARIOS = (
    "drivers",
    "raw_asgi",
    "raw_granian",
    *LOOKUP_SCENARIOS,
    "single_granian",
    "single_granian_api",
    "limits",
    "e2e",
    "sends_all",
    "sends_api",
    "workers_1",
    "workers_2",
)
POSTGRES_ONLY = ("workers_1", "workers_2")
HISTORY = ("history_first", "history_deep")
DRIVER_IN_SIZES = (100, 500, 5000)
SMPP_WINDOW = 200  # what the gateway gives its built-in simulator
SMPP_BINDS = 1


# -- options --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add = parser.add_argument
    add("--store", default=None, help="sqlite, postgres, or both comma-separated (default sqlite)")
    add(
        "--database-url",
        default=None,
        help="measure PostgreSQL in this (empty) database instead of a fresh one",
    )
    add("--pg-admin-dsn", default=DEFAULT_PG_ADMIN_DSN, help="where fresh pgw_bench_* databases are made")
    add("--messages", type=int, default=None, help="messages to seed (default 1,000,000; smoke 20,000)")
    add(
        "--history-messages",
        type=int,
        default=None,
        help="history pages on a separate store this big (default: the main store; e.g. 10000000)",
    )
    add(
        "--companies",
        type=int,
        default=None,
        help="companies; the first holds most messages (default 5; smoke 2)",
    )
    add("--big-share", type=float, default=0.95, help="share of the messages held by the first company")
    add("--days", type=int, default=90, help="createdAt spread over the last N days")
    add("--duration", type=float, default=None, help="seconds of load per HTTP figure (default 10; smoke 1)")
    add("--warmup", type=float, default=None, help="seconds of unrecorded load first (default 2; smoke 0)")
    add("--driver-seconds", type=float, default=None, help="seconds per driver figure (default 3; smoke 0.2)")
    add(
        "--connections",
        type=int,
        default=None,
        help="wrk connections (-c; default 64; smoke 8, less queued work between figures)",
    )
    add("--deep-fraction", type=float, default=0.9, help="deep pages start this far down the history (0..1)")
    add("--e2e-messages", type=int, default=None, help="messages sent end to end (default 40,000; smoke 500)")
    add("--receipt-delay", default="0.05,0.2", help="the SMSC simulator's receipt delay, min,max seconds")
    add(
        "--smsc",
        choices=("bench", "builtin"),
        default="bench",
        help="role all: the bench's SMSC simulator (counts duplicates) or the one serve starts itself",
    )
    add(
        "--max-requests",
        type=int,
        default=None,
        help="stop a wrk run after this many responses (default 100,000 per second of --duration)",
    )
    add("--scenarios", default=",".join(SCENARIOS), help="which figures (workers_* on PostgreSQL only)")
    add("--name", default="suite", help="report name: bench/results/<name>[-smoke]-<stores>-<date>.json")
    add("--out", type=Path, default=None, help="JSON report path (overrides --name)")
    add(
        "--no-docs",
        action="store_true",
        help="do not write docs/performance.md (smoke and --scenarios runs never do)",
    )
    add("--no-pin", action="store_true", help="do not pin wrk and the servers to separate CPUs")
    add(
        "--limit-pairs",
        type=int,
        default=None,
        help="limits: single look-ups with rate limits on, then off, this many times (default 3; smoke 1)",
    )
    add("--keep", action="store_true", help="keep the temp folder (prints where)")
    add("--smoke", action="store_true", help="CI: 20,000 messages, 1 s per figure, 500 sent end to end")
    args = parser.parse_args(argv)

    smoke = args.smoke
    if args.store is None:
        args.store = "postgres" if args.database_url else "sqlite"
    args.stores = [s.strip() for s in args.store.split(",") if s.strip()]
    if not args.stores or set(args.stores) - {"sqlite", "postgres"}:
        parser.error("--store takes sqlite, postgres or both")
    defaults = {"messages": (20_000, 1_000_000), "duration": (1.0, 10.0), "warmup": (0.0, 2.0)}
    defaults |= {
        "driver_seconds": (0.2, 3.0),
        # 40,000: about 20 s of load. Back to back on the 1,000,000-message store (655d22c),
        # 10,000 took 6.0 s (1,660/s) and 40,000 took 22.1 s (1,812/s): read as N / rate + fixed,
        # the ramp and the last receipts' latency are about 0.7 s whatever N is, a ninth of the
        # shorter run and a thirtieth of this one.
        "e2e_messages": (500, 40_000),
        "companies": (2, 5),
        "connections": (8, 64),
        "limit_pairs": (1, 3),
    }
    for name, (small, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if smoke else full)
    if args.history_messages is None:
        args.history_messages = args.messages
    if args.max_requests is None:
        args.max_requests = int(100_000 * max(args.duration, 1))
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    try:
        low, high = (float(x) for x in args.receipt_delay.split(","))
    except ValueError:
        parser.error("--receipt-delay is min,max in seconds")
    args.receipt_delay = (low, high)
    if args.companies < 1 or args.messages < args.companies * 10 or not 0 < args.big_share <= 1:
        parser.error("need at least one company, ten messages per company and 0 < --big-share <= 1")
    if not 0 <= args.deep_fraction < 1:
        parser.error("--deep-fraction must be in [0, 1)")
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 60 or not 0 < args.driver_seconds <= 60:
        parser.error("--duration must be in (0, 600], --warmup in [0, 60], --driver-seconds in (0, 60]")
    if args.out is None:
        name = f"{args.name}{'-smoke' if smoke else ''}-{'-'.join(args.stores)}-{dt.date.today().isoformat()}.json"
        args.out = REPO / "bench" / "results" / name
    return args


# -- one run ----------------------------------------------------------------------------------------


@dataclass
class Context:
    """What every measurement of the run shares."""

    args: argparse.Namespace
    workdir: Path
    wrk_cpu: int | None
    server_cpu: int | None
    script: Path
    next_number: int = 0  # destinations of sends keep counting up across scenarios

    def wanted(self, name: str) -> bool:
        return name in self.args.scenarios

    def numbers(self, count: int) -> int:
        first, self.next_number = self.next_number, self.next_number + count
        return first


@dataclass
class StoreRun:
    """One store's measurements, in the order that keeps them from disturbing each other."""

    ctx: Context
    store: Store
    companies: list[Company] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def args(self) -> argparse.Namespace:
        return self.ctx.args

    def cli_env(self) -> dict[str, str]:
        return gateway_env(self.store.data_dir, 0, database_url=self.store.database_url)

    def new_company(self, name: str) -> Company:
        created = json.loads(run_cli(["company", "create", name, "--json"], self.cli_env(), self.ctx.workdir))
        return Company(created["companyId"], name, created["apiKey"])

    def seed(self, messages: int) -> dict[str, Any]:
        run_cli(["migrate"], self.cli_env(), self.ctx.workdir)
        names = ["bench-big", *(f"bench-{i + 1}" for i in range(1, self.args.companies))]
        self.companies = [self.new_company(name) for name in names]
        if self.store.kind == "sqlite":
            facts = seed_sqlite(
                self.store.sqlite_path, self.companies, messages, self.args.big_share, self.args.days
            )
        else:
            assert self.store.dsn is not None
            facts = seed_postgres(
                self.store.dsn, self.companies, messages, self.args.big_share, self.args.days
            )
        log(f"seeded {messages:,} messages in {facts['seconds']} s ({facts['rows_per_second']:,} rows/s)")
        return facts

    # -- servers --

    def gateway_environment(self, port: int, **extra: str) -> dict[str, str]:
        settings = {f"PARTNER_GATEWAY_{k.upper()}": v for k, v in extra.items()}
        return gateway_env(self.store.data_dir, port, database_url=self.store.database_url, extra=settings)

    @contextmanager
    def gateway(
        self, role: str, sim: SmscThread | None = None, name: str | None = None, **settings: str
    ) -> Iterator[GatewayServer]:
        port = free_port()
        extra = {"smpp_carriers": sim.carriers_setting()} if sim else {}
        env = self.gateway_environment(port, **extra, **settings)
        server = GatewayServer(env, self.ctx.workdir, port, self.ctx.server_cpu, role, name)
        try:
            server.wait_ready()
            yield server
            server.check_alive()
        finally:
            server.stop()

    # -- figures --

    def http_figure(
        self,
        server: ServerProcess,
        port: int,
        scenario: Scenario,
        api_key: str | None,
        as_figure: tuple[str, str] | None = None,
    ) -> Figure:
        """Check the scenario's answer, load it with wrk, let the server settle. `as_figure` is
        (key, label) when the figure is not the scenario's own (the raw ASGI app answering /health)."""
        key, label = as_figure or (scenario.name, scenario.label)
        token = api_key if scenario.authenticated else None
        check_first(port, scenario, token)
        requests = write_requests(self.ctx.workdir / f"{key}.requests", scenario.requests)
        measured = self.wrk(port, token, Load(paths_file=requests), key)
        settle(server, port)
        return wrk_figure(key, label, "req/s", measured, scenario.notes)

    def wrk(self, port: int, api_key: str | None, load: Load, name: str) -> dict[str, Any]:
        common: dict[str, Any] = {
            "port": port,
            "api_key": api_key,
            "script": self.ctx.script,
            "connections": self.args.connections,
            "max_requests": self.args.max_requests,
            "cpu": self.ctx.wrk_cpu,
        }
        if self.args.warmup > 0:
            warm = load if load.mode == "rotate" else Load("send", first_number=self.ctx.numbers(10**6))
            run_wrk(duration=self.args.warmup, load=warm, **common)
        log(f"{self.store.kind} {name}: {self.args.duration:g} s at {self.args.connections} connections")
        measured = run_wrk(duration=self.args.duration, load=load, **common)
        problem = failures(measured)
        if problem:
            raise BenchError(f"{name}: {problem}")
        return measured

    def measure_drivers(self, ids: list[str]) -> None:
        seconds, cpu = self.args.driver_seconds, self.ctx.server_cpu
        log(f"{self.store.kind} drivers: {seconds:g} s per figure")
        if self.store.kind == "sqlite":
            rates = measure_sqlite(self.store.sqlite_path, ids, DRIVER_IN_SIZES, seconds, cpu)
        else:
            assert self.store.dsn is not None
            rates = measure_postgres(self.store.dsn, ids, DRIVER_IN_SIZES, seconds, cpu)
        self.figures += [driver_figure(rate) for rate in rates]

    def measure_raw_asgi(self, http_server: str = "uvicorn") -> None:
        port = free_port()
        server = raw_asgi_server(self.ctx.workdir, port, self.ctx.server_cpu, dict(os.environ), http_server)
        try:
            server.wait_http_ready(port)
            as_figure = (
                ("raw_granian", "raw ASGI on granian, static JSON (ceiling)")
                if http_server == "granian"
                else ("raw_asgi", "raw ASGI, static JSON (ceiling)")
            )
            self.figures.append(self.http_figure(server, port, health_scenario(), None, as_figure))
            server.check_alive()
        finally:
            server.stop()

    def measure_sends(self, server: GatewayServer, key: str, label: str) -> None:
        company = self.new_company(f"bench-{key}")
        check_send(server.port, company.api_key)
        load = Load("send", first_number=self.ctx.numbers(self.args.max_requests * 2))
        measured = self.wrk(server.port, company.api_key, load, key)
        settle(server, server.port)
        self.figures.append(wrk_figure(key, label, "msg/s", measured, {"accepted": measured["accepted"]}))

    def measure_e2e(self, port: int, sim: SmscThread | None, key: str, label: str, reader: Reader) -> None:
        """Send exactly N, then wait until all are DELIVERED; the rate is N over first accept to last delivery."""
        wanted = self.args.e2e_messages
        company = self.new_company(f"bench-{key}")
        before = sim.counters() if sim else {}
        load = Load("send", first_number=self.ctx.numbers(wanted), send_limit=wanted)
        log(f"{self.store.kind} {key}: {wanted:,} messages end to end")
        measured = run_wrk(
            port=port,
            api_key=company.api_key,
            script=self.ctx.script,
            connections=self.args.connections,
            duration=max(10.0, wanted / 200),  # a bound, not the pace: wrk stops after N 202s
            max_requests=wanted * 100,
            cpu=self.ctx.wrk_cpu,
            load=load,
        )
        problem = failures(measured)
        if problem:
            raise BenchError(f"{key}: {problem}")
        accepted = int(
            reader.fetchall("SELECT count(*) FROM messages WHERE company_id = ?", company.id)[0][0]
        )
        delivery = wait_delivered(reader, company.id, accepted, timeout=max(30.0, wanted / 20))
        if not delivery.complete and self.args.smoke:
            raise BenchError(f"{key}: {delivery.delivered} of {accepted} messages delivered")
        carrier = {name: value - before[name] for name, value in sim.counters().items()} if sim else {}
        # Fewer than N accepted: wrk's time ran out (sends slower than 200/s). Requests still in
        # flight when it was stopped may be stored after the first count: count again.
        accepted = max(
            accepted,
            int(reader.fetchall("SELECT count(*) FROM messages WHERE company_id = ?", company.id)[0][0]),
        )
        complete = delivery.complete and accepted >= wanted
        self.figures.append(
            Figure(
                key,
                label,
                "msg/s",
                delivery.rate,
                delivery.p50_ms,
                delivery.p99_ms,
                flags=[] if complete else ["incomplete"],
                details={
                    "sent": wanted,
                    "accepted": accepted,
                    "delivered": delivery.delivered,
                    "seconds_first_accept_to_last_delivered": delivery.seconds,
                    "accepted_per_second_wrk": measured["requests_per_second"],
                    "carrier": carrier,
                    "undelivered": delivery.undelivered,
                },
            )
        )
        counted = "the gateway's built-in simulator (no carrier counts)"
        if carrier:
            counted = (
                f"the carrier counted {carrier['submits']:,} submits and {carrier['duplicates']} duplicates"
            )
        delivered = f"{delivery.delivered:,} of {accepted:,} delivered in {delivery.seconds:.1f} s"
        self.notes.append(f"{label}: {delivered}; {counted}.")

    # -- phases --

    def run(self) -> dict[str, Any]:
        args, ctx = self.args, self.ctx
        separate_history = args.history_messages != args.messages
        seeding = self.seed(args.messages)
        reader = self.store.reader()
        try:
            big = self.companies[0]
            pools = id_pools(reader, big)
            if ctx.wanted("drivers"):
                self.measure_drivers([i for ids in pools.values() for i in ids])
            if ctx.wanted("raw_asgi"):
                self.measure_raw_asgi()
            if ctx.wanted("raw_granian"):
                self.measure_raw_asgi("granian")
            if self.store.kind == "postgres" and any(ctx.wanted(n) for n in POSTGRES_ONLY):
                self.workers(reader)  # first: no earlier figure leaves undelivered sends for them
            names = [n for n in LOOKUP_SCENARIOS if ctx.wanted(n) and not (separate_history and n in HISTORY)]
            if names or ctx.wanted("e2e") or ctx.wanted("sends_all"):
                self.role_all(reader, big, pools, names)
            if ctx.wanted("single_granian"):
                self.single_on_granian(reader, big, pools)
            if ctx.wanted("single_granian_api"):
                self.single_on_granian_api(reader, big, pools)
            if ctx.wanted("limits"):
                self.limit_pairs(reader, big, pools)
            if ctx.wanted("sends_api"):
                with self.gateway("api") as server:
                    self.measure_sends(server, "sends_api", "accepted sends, role api")
            server_version = None
            if self.store.kind == "postgres":
                server_version = "PostgreSQL " + str(reader.fetchall("SHOW server_version")[0][0])
        finally:
            reader.close()
        if separate_history and any(ctx.wanted(n) for n in HISTORY):
            self.history_store()
        assess(self.figures, self.store.kind)
        return {
            "label": self.store.label,
            "seeding": seeding,
            "server_version": server_version,
            "figures": [figure_dict(f) for f in self.figures],
            "notes": self.notes,
        }

    def role_all(self, reader: Reader, big: Company, pools: dict[str, list[str]], names: list[str]) -> None:
        sim = (
            SmscThread(self.args.receipt_delay, SMPP_WINDOW, SMPP_BINDS)
            if self.args.smsc == "bench"
            else None
        )
        try:
            with self.gateway("all", sim) as server:
                scenarios = build_scenarios(reader, big, pools, self.args.deep_fraction, names)
                for name in names:
                    self.figures.append(self.http_figure(server, server.port, scenarios[name], big.api_key))
                if self.ctx.wanted("e2e"):
                    if sim:
                        sim.wait_binds(SMPP_BINDS)
                    self.measure_e2e(server.port, sim, "e2e", "delivered end to end, role all", reader)
                if self.ctx.wanted("sends_all"):
                    self.measure_sends(server, "sends_all", "accepted sends, role all")
        finally:
            if sim:
                sim.stop()

    def single_on_granian(self, reader: Reader, big: Company, pools: dict[str, list[str]]) -> None:
        """The single look-up on the same gateway (role all) served by granian
        (PARTNER_GATEWAY_HTTP_SERVER=granian), beside raw granian's ceiling."""
        with self.gateway("all", name="gateway-granian", http_server="granian") as server:
            scenario = build_scenarios(reader, big, pools, self.args.deep_fraction, ["single"])["single"]
            as_figure = ("single_granian", "single look-up, served by granian")
            self.figures.append(self.http_figure(server, server.port, scenario, big.api_key, as_figure))

    def single_on_granian_api(self, reader: Reader, big: Company, pools: dict[str, list[str]]) -> None:
        """Issue 20's set-up for its look-up goal: one `serve --role api` on granian, with rate limits
        on (so high that nothing is refused), metrics and request ids as by default. Its uvicorn
        pair is `limits`' `single_limits_on_*` (the same role and settings on uvicorn)."""
        high = {"rate_limit_reads_per_second": "1000000", "rate_limit_sends_per_second": "1000000"}
        with self.gateway(
            "api", name="gateway-granian-api", http_server="granian", rate_limit_enabled="true", **high
        ) as server:
            scenario = build_scenarios(reader, big, pools, self.args.deep_fraction, ["single"])["single"]
            as_figure = ("single_granian_api", "single look-up, role api on granian, limits and metrics on")
            self.figures.append(self.http_figure(server, server.port, scenario, big.api_key, as_figure))

    def limit_pairs(self, reader: Reader, big: Company, pools: dict[str, list[str]]) -> None:
        """The cost of rate limits (issue 16): the single look-up on two API processes of the same
        store, one with limits on (so high that nothing is refused: what is measured is the
        counting and the headers) and one with them off, measured alternately, on, off, on, off.
        Besides the rate, each figure has the server's CPU time per request (user + system, from
        /proc, over the measured run only): on a shared machine the rate swings with the others'
        load, the CPU a request costs much less."""
        single = build_scenarios(reader, big, pools, self.args.deep_fraction, ["single"])["single"]
        high = {"rate_limit_reads_per_second": "1000000", "rate_limit_sends_per_second": "1000000"}
        requests = write_requests(self.ctx.workdir / "single_limits.requests", single.requests)
        load = Load(paths_file=requests)
        with (
            self.gateway("api", name="gateway-limits-on", rate_limit_enabled="true", **high) as on,
            self.gateway("api", name="gateway-limits-off", rate_limit_enabled="false") as off,
        ):
            pairs: list[tuple[Figure, Figure]] = []
            for number in range(1, self.args.limit_pairs + 1):
                measured = []
                for state, server in (("on", on), ("off", off)):
                    key = f"single_limits_{state}_{number}"
                    check_first(server.port, single, big.api_key)
                    if self.args.warmup > 0:
                        warm = {"port": server.port, "api_key": big.api_key, "script": self.ctx.script}
                        run_wrk(
                            duration=self.args.warmup,
                            load=load,
                            connections=self.args.connections,
                            max_requests=self.args.max_requests,
                            cpu=self.ctx.wrk_cpu,
                            **warm,
                        )
                    before = cpu_seconds(server.process.pid)
                    args = self.args
                    log(f"{self.store.kind} {key}: {args.duration:g} s at {args.connections} connections")
                    result = run_wrk(
                        port=server.port,
                        api_key=big.api_key,
                        script=self.ctx.script,
                        connections=args.connections,
                        duration=args.duration,
                        max_requests=args.max_requests,
                        cpu=self.ctx.wrk_cpu,
                        load=load,
                    )
                    spent = cpu_seconds(server.process.pid) - before
                    problem = failures(result)
                    if problem:
                        raise BenchError(f"{key}: {problem}")
                    settle(server, server.port)
                    cpu_us = spent / result["requests"] * 1e6 if result["requests"] else 0.0
                    label = (
                        f"single look-up, rate limits {state} (pair {number}; {cpu_us:.1f} µs CPU/request)"
                    )
                    measured.append(wrk_figure(key, label, "req/s", result, {"cpu_us_per_request": cpu_us}))
                pairs.append((measured[0], measured[1]))
                self.figures += measured
        for with_limits, without in pairs:
            rate_ratio = with_limits.rate / without.rate if without.rate else 0.0
            off_us = float(without.details["cpu_us_per_request"])
            cpu_ratio = float(with_limits.details["cpu_us_per_request"]) / off_us if off_us else 0.0
            with_limits.goal = (
                f"CPU/request ≤105 % of the paired off ({cpu_ratio:.1%}; rate {rate_ratio:.1%})"
            )
            with_limits.holds = 0 < cpu_ratio <= 1.05
        on_rates = [pair[0].rate for pair in pairs]
        off_rates = [pair[1].rate for pair in pairs]
        on_cpu = [float(pair[0].details["cpu_us_per_request"]) for pair in pairs]
        off_cpu = [float(pair[1].details["cpu_us_per_request"]) for pair in pairs]
        self.notes.append(
            "Rate limits on against off, single look-up, alternated: on "
            + ", ".join(f"{rate:,.0f}" for rate in on_rates)
            + "; off "
            + ", ".join(f"{rate:,.0f}" for rate in off_rates)
            + f" req/s (on / off of the sums {sum(on_rates) / sum(off_rates):.1%}); server CPU per request on "
            + ", ".join(f"{us:.1f}" for us in on_cpu)
            + "; off "
            + ", ".join(f"{us:.1f}" for us in off_cpu)
            + f" µs (on / off of the sums {sum(on_cpu) / sum(off_cpu):.1%})."
        )

    def workers(self, reader: Reader) -> None:
        """Issue 5: one API process and 1 or 2 workers on PostgreSQL + RabbitMQ, all on the server CPU."""
        vhost = RabbitVhost()
        try:
            for count in (1, 2):
                if self.ctx.wanted(f"workers_{count}"):
                    self.cluster(reader, vhost, count)
        finally:
            vhost.delete()

    def cluster(self, reader: Reader, vhost: RabbitVhost, count: int) -> None:
        """`binds` holds across the cluster, so it grows with the workers: one SMPP session each."""
        sim = SmscThread(self.args.receipt_delay, SMPP_WINDOW, SMPP_BINDS * count)
        port = free_port()
        env = self.gateway_environment(port, smpp_carriers=sim.carriers_setting(), amqp_url=vhost.url)
        with ExitStack() as stack:
            stack.callback(sim.stop)
            for number in range(count):
                command = [gateway_executable(), "serve", "--role", "worker"]
                name = f"worker{number}-of-{count}"
                worker = ServerProcess(name, command, env, self.ctx.workdir, self.ctx.server_cpu)
                stack.callback(worker.stop)
            api = GatewayServer(env, self.ctx.workdir, port, self.ctx.server_cpu, "api", f"api-with-{count}")
            stack.callback(api.stop)
            api.wait_ready()
            sim.wait_binds(count * SMPP_BINDS)
            label = f"delivered end to end, api + {count} worker{'s' if count > 1 else ''} (RabbitMQ)"
            self.measure_e2e(port, sim, f"workers_{count}", label, reader)
            api.check_alive()

    def history_store(self) -> None:
        """History pages on a store of --history-messages (e.g. 10,000,000), seeded for them alone."""
        other = make_store(self.store.kind, self.ctx, "history")
        try:
            history = StoreRun(self.ctx, other)
            seeding = history.seed(self.args.history_messages)
            reader = other.reader()
            try:
                big = history.companies[0]
                names = [n for n in HISTORY if self.ctx.wanted(n)]
                with history.gateway("all") as server:
                    scenarios = build_scenarios(reader, big, {}, self.args.deep_fraction, names)
                    for name in names:
                        figure = history.http_figure(server, server.port, scenarios[name], big.api_key)
                        figure.label += f" ({self.args.history_messages:,} messages)"
                        self.figures.append(figure)
            finally:
                reader.close()
            size = f"{self.args.history_messages:,} messages"
            self.notes.append(
                f"History pages on a separate store of {size}, seeded in {seeding['seconds']} s."
            )
        finally:
            other.drop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(server: ServerProcess, port: int) -> None:
    """Let the server finish what the last run left queued before the next figure starts."""
    waited = server.wait_idle(port)
    if waited > 1:
        log(f"{server.name} took {waited:.1f} s to work off the last run's queued requests")


def wrk_figure(key: str, label: str, unit: str, measured: dict[str, Any], notes: dict[str, Any]) -> Figure:
    latency = measured["latency_us"]
    details = {**notes, **{k: v for k, v in measured.items() if k != "wrk_text"}}
    return Figure(
        key,
        label,
        unit,
        measured["requests_per_second"],
        latency["p50"] / 1000,
        latency["p99"] / 1000,
        flags=["capped"] if measured["capped"] else [],
        details=details,
    )


def driver_figure(rate: DriverRate) -> Figure:
    details = {"ops": rate.ops, "seconds": rate.seconds}
    return Figure(rate.key, rate.label, "ops/s", rate.rate, rate.p50_ms, rate.p99_ms, details=details)


def make_store(kind: str, ctx: Context, name: str) -> Store:
    data_dir = ctx.workdir / f"data-{name}"
    if kind == "sqlite":
        return sqlite_store(data_dir)
    url = ctx.args.database_url if name == "main" else None
    return postgres_store(data_dir, admin_dsn=ctx.args.pg_admin_dsn, database_url=url)


# -- the command ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        require_wrk()
        return run(args)
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset") is not None
    wrk_cpu, server_cpu = (0, 1) if pin else (None, None)
    if pin:
        os.sched_setaffinity(0, {0})  # this script and its simulator threads stay off the server's CPU
    facts = machine_facts()
    workdir = Path(tempfile.mkdtemp(prefix="pgw-bench-"))
    script = workdir / "bench.lua"
    script.write_text(LUA_SCRIPT)
    ctx = Context(args, workdir, wrk_cpu, server_cpu, script)
    stores: dict[str, Any] = {}
    try:
        for kind in args.stores:
            store = make_store(kind, ctx, "main")
            try:
                stores[kind] = StoreRun(ctx, store).run()
            finally:
                store.drop()
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    report = {
        "benchmark": args.name,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/run.py", *sys.argv[1:]]),
        "seconds": round(time.monotonic() - began, 1),
        "options": options_of(args, pin, wrk_cpu, server_cpu),
        "machine": facts,
        "stores": stores,
    }
    for kind, section in stores.items():
        print(f"\n{section['label']}\n")
        print(text_table(figures_of(section)))
        notes = list(section["notes"])
        if kind == "postgres" and "sqlite" in stores:
            against = postgres_against_sqlite(figures_of(stores["sqlite"]), figures_of(section))
            notes += [against] if against else []
        for note in notes:
            print(f"- {note}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.out} ({report['seconds']} s in all)")
    if args.smoke or args.no_docs or args.scenarios != list(SCENARIOS):
        log("docs/performance.md left alone (only a full run with every scenario writes it)")
    else:
        write_performance_md([report])
        log("updated docs/performance.md")
    return 0


def options_of(
    args: argparse.Namespace, pin: bool, wrk_cpu: int | None, server_cpu: int | None
) -> dict[str, Any]:
    return {
        "stores": args.stores,
        "messages": args.messages,
        "history_messages": args.history_messages,
        "companies": args.companies,
        "big_share": args.big_share,
        "days": args.days,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "driver_seconds": args.driver_seconds,
        "connections": args.connections,
        "deep_fraction": args.deep_fraction,
        "e2e_messages": args.e2e_messages,
        "receipt_delay_s": list(args.receipt_delay),
        "smsc": args.smsc,
        "smpp": {"window": SMPP_WINDOW, "binds": SMPP_BINDS},
        "max_requests": args.max_requests,
        "scenarios": args.scenarios,
        "smoke": args.smoke,
        "wrk_threads": 1,
        "cpu_pinning": {"wrk": wrk_cpu, "server": server_cpu} if pin else None,
    }


if __name__ == "__main__":
    sys.exit(main())
