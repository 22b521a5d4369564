"""Status callbacks under load (issue 15): end to end with callbacks on against off, alternated in
one run, and how many callbacks per second the sender delivers to a local receiver.

```sh
.venv/bin/python bench/callbacks.py                    # SQLite, 2 rounds of on/off, 10,000 messages each
.venv/bin/python bench/callbacks.py --store postgres   # a fresh pgw_bench_* database
.venv/bin/python bench/callbacks.py --smoke            # 300 messages, one round: does it still run?
```

One `partner-gateway serve` (embedded, role all) against the bench's SMSC simulator, and a
receiver on loopback (bench/sink.py: 204 to every request on plain asyncio, so the partner's
side costs CPU 0, which wrk and the simulator share, as little as it can; the gateway on CPU 1). Each round
sends exactly N SMS with wrk for a company with a default callback URL (on) and for one
without (off), in the order on, off, on, off, ... (machine noise hits both alike):

- **e2e delivered/s**: N / (first accepted -> last DELIVERED), from the store (bench/sending.py);
- **callbacks delivered/s (live)**: the on round's events / (first event -> last delivered),
  the sender keeping up with the traffic it is given;
- **callbacks delivered/s (backlog)**: after the rounds, every on company's events replayed at
  once (`callbacks replay`), and delivered / (replay -> last delivered): the sender's capacity.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, BenchError, free_port, gateway_env, log, run_cli
from machine import code_commit, code_dirty_files
from sending import SmscThread, wait_delivered
from servers import GatewayServer, ServerProcess
from stores import DEFAULT_PG_ADMIN_DSN, Reader, Store, postgres_store, sqlite_store
from wrk import LUA_SCRIPT, Load, failures, require_wrk, run_wrk

from partner_gateway.sender_process import sender_processes_of

SMPP_WINDOW = 200
SMPP_BINDS = 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--messages", type=int, default=10_000, help="messages per round and mode")
    parser.add_argument("--rounds", type=int, default=2, help="on/off pairs")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pg-admin-dsn", default=DEFAULT_PG_ADMIN_DSN)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--callback-sender",
        choices=["process", "inline"],
        default="process",
        help="PARTNER_GATEWAY_CALLBACK_SENDER: the sender in a child process (pinned by --sender-cpu), "
        "or on the gateway's loop",
    )
    parser.add_argument(
        "--sender-cpu",
        choices=["other", "same"],
        default="other",
        help="the sender process's core: the other one (with wrk, the simulator and the receiver), or "
        "the gateway's own (what callbacks cost when both share one core)",
    )
    parser.add_argument("--smoke", action="store_true", help="300 messages, one round")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        args.messages, args.rounds = 300, 1
    return args


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise BenchError(f"nothing listens on {port} after {timeout:.0f} s")


def wait_callbacks(reader: Reader, company_id: str, expected_at_least: int, timeout: float) -> dict[str, Any]:
    """Until every event of the company is delivered (and there are at least as many as asked)."""
    began = time.monotonic()
    while True:
        rows = reader.fetchall(
            "SELECT state, count(*), min(occurred_at), max(finished_at) FROM callback_events"
            " WHERE company_id = ? GROUP BY state",
            company_id,
        )
        by_state = {state: (int(n), first, last) for state, n, first, last in rows}
        total = sum(n for n, _, _ in by_state.values())
        delivered = by_state.get("delivered", (0, None, None))
        if (total >= expected_at_least and delivered[0] == total) or time.monotonic() - began > timeout:
            return {"events": total, "delivered": delivered[0], "states": {k: v[0] for k, v in by_state.items()},
                    "first_occurred": delivered[1], "last_delivered": delivered[2]}  # fmt: skip
        time.sleep(0.2)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int | None) -> tuple[float, float]:
    """User and system CPU seconds a process has used (/proc/PID/stat), 0 when it is gone."""
    if pid is None:
        return 0.0, 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def sender_process(gateway_pid: int, timeout: float = 30.0) -> int:
    """The pid of the gateway's callback sender process, once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sender_processes_of(gateway_pid)
        if found:
            return found[0]
        time.sleep(0.1)
    raise BenchError("the gateway started no callback sender process")


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of the process (its store's threads were started before: a thread keeps the
    mask it was made with, so pinning only the pid's own thread left them on the gateway's core)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def main() -> int:
    args = parse_args()
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
        os.sched_setaffinity(0, {0})
    workdir = Path(tempfile.mkdtemp(prefix="pgw-bench-callbacks-"))
    script = workdir / "bench.lua"
    script.write_text(LUA_SCRIPT)
    data_dir = workdir / "data"
    store: Store = (
        sqlite_store(data_dir)
        if args.store == "sqlite"
        else postgres_store(data_dir, admin_dsn=args.pg_admin_dsn, database_url=None)
    )
    rounds: list[dict[str, Any]] = []
    backlog: dict[str, Any] = {}
    sim = SmscThread((0.05, 0.2), SMPP_WINDOW, SMPP_BINDS)
    try:
        private = {"PARTNER_GATEWAY_CALLBACK_ALLOW_PRIVATE_NETWORKS": "true"}  # a receiver on loopback
        cli_env = gateway_env(store.data_dir, 0, database_url=store.database_url, extra=private)
        run_cli(["migrate"], cli_env, workdir)
        receiver_port, gateway_port = free_port(), free_port()
        receiver = ServerProcess(
            "receiver",
            [sys.executable, str(REPO / "bench" / "sink.py"), "--port", str(receiver_port)],
            dict(os.environ),
            workdir,
            wrk_cpu,
        )
        env = gateway_env(
            store.data_dir,
            gateway_port,
            database_url=store.database_url,
            extra={
                "PARTNER_GATEWAY_SMPP_CARRIERS": sim.carriers_setting(),
                "PARTNER_GATEWAY_CALLBACK_SENDER": args.callback_sender,
                **private,
            },
        )
        gateway = GatewayServer(env, workdir, gateway_port, server_cpu, "all")
        reader = store.reader()
        try:
            wait_port(receiver_port)
            gateway.wait_ready()
            sim.wait_binds(SMPP_BINDS)
            gateway_pid = gateway.process.pid
            sender_pid = None
            if args.callback_sender == "process":
                sender_pid = sender_process(gateway_pid)
                if pin and args.sender_cpu == "other":
                    pin_process(sender_pid, {wrk_cpu})
            number = 10_000_000
            on_companies = []
            for round_number in range(args.rounds):
                for mode in ("on", "off"):
                    created = json.loads(
                        run_cli(
                            ["company", "create", f"cb-{mode}-{round_number}", "--json"], cli_env, workdir
                        )
                    )
                    company_id, key = created["companyId"], created["apiKey"]
                    if mode == "on":
                        url = f"http://127.0.0.1:{receiver_port}/callbacks"
                        run_cli(
                            ["company", "callbacks", company_id, "--url", url, "--json"], cli_env, workdir
                        )
                        on_companies.append(company_id)
                    log(f"round {round_number + 1} callbacks {mode}: {args.messages:,} messages end to end")
                    cpu_before = cpu_times(gateway_pid), cpu_times(sender_pid)
                    measured = run_wrk(
                        port=gateway_port,
                        api_key=key,
                        script=script,
                        connections=args.connections,
                        duration=max(10.0, args.messages / 500),
                        max_requests=args.messages * 100,
                        cpu=wrk_cpu,
                        load=Load("send", first_number=number, send_limit=args.messages),
                    )
                    number += args.messages
                    problem = failures(measured)
                    if problem:
                        raise BenchError(problem)
                    delivery = wait_delivered(
                        reader, company_id, args.messages, timeout=max(30.0, args.messages / 20)
                    )
                    entry: dict[str, Any] = {
                        "round": round_number + 1,
                        "callbacks": mode,
                        "e2e_delivered_per_second": round(delivery.rate, 1),
                        "e2e_p50_ms": delivery.p50_ms,
                        "e2e_p99_ms": delivery.p99_ms,
                        "delivered": delivery.delivered,
                        "accepted_per_second_wrk": round(measured["requests_per_second"], 1),
                    }
                    if mode == "on":
                        events = wait_callbacks(reader, company_id, 2 * delivery.delivered, timeout=120)
                    # CPU per message, the sender's events included: the gateway's process and,
                    # apart, its sender process's.
                    user, system = (a - b for a, b in zip(cpu_times(gateway_pid), cpu_before[0], strict=True))
                    per_message = 1000 / delivery.delivered
                    entry["gateway_cpu_ms_per_message"] = round((user + system) * per_message, 3)
                    entry["gateway_system_cpu_ms_per_message"] = round(system * per_message, 3)
                    if sender_pid is not None:
                        sender_cpu = sum(cpu_times(sender_pid)) - sum(cpu_before[1])
                        entry["sender_cpu_ms_per_message"] = round(sender_cpu * per_message, 3)
                    if mode == "on":
                        seconds = (events["last_delivered"] - events["first_occurred"]) / 1000
                        entry["callbacks_delivered"] = events["delivered"]
                        entry["callbacks_events"] = events["events"]
                        entry["callbacks_per_second_live"] = (
                            round(events["delivered"] / seconds, 1) if seconds else 0
                        )
                    rounds.append(entry)
                    log(json.dumps(entry))
                    gateway.wait_idle(gateway_port)
            # The sender's capacity: every on company's events at once.
            replay_started = time.time() * 1000
            replayed = 0
            for company_id in on_companies:
                answer = run_cli(
                    [
                        "callbacks",
                        "replay",
                        "--company",
                        company_id,
                        "--since",
                        "2020-01-01T00:00:00Z",
                        "--json",
                    ],
                    cli_env,
                    workdir,
                )
                replayed += int(json.loads(answer)["replayed"])
            finished = 0.0
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                rows = reader.fetchall(
                    "SELECT count(*), max(finished_at) FROM callback_events WHERE state = 'delivered'"
                    " AND finished_at >= ?",
                    int(replay_started),
                )
                done, finished = int(rows[0][0]), float(rows[0][1] or 0)
                if done >= replayed:
                    break
                time.sleep(0.2)
            seconds = (finished - replay_started) / 1000
            backlog = {"replayed": replayed, "delivered": done, "seconds": round(seconds, 2),
                       "callbacks_per_second": round(done / seconds, 1) if seconds > 0 else 0}  # fmt: skip
            log(f"backlog: {json.dumps(backlog)}")
            gateway.check_alive()
        finally:
            reader.close()
            gateway.stop()
            receiver.stop()
    finally:
        sim.stop()
        store.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    on = [r["e2e_delivered_per_second"] for r in rounds if r["callbacks"] == "on"]
    off = [r["e2e_delivered_per_second"] for r in rounds if r["callbacks"] == "off"]
    summary = {
        "e2e_on_mean": round(sum(on) / len(on), 1),
        "e2e_off_mean": round(sum(off) / len(off), 1),
        "on_over_off": round((sum(on) / len(on)) / (sum(off) / len(off)), 3),
    }
    report = {
        "benchmark": "callbacks",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/callbacks.py", *sys.argv[1:]]),
        "store": args.store,
        "messages_per_round": args.messages,
        "seconds": round(time.monotonic() - began, 1),
        "callback_sender": args.callback_sender,
        "cpu_pinning": {
            "wrk_receiver_simulator": wrk_cpu,
            "gateway": server_cpu,
            "sender_process": (wrk_cpu if args.sender_cpu == "other" else server_cpu)
            if args.callback_sender == "process"
            else None,
        }
        if pin
        else None,
        "git_commit": code_commit(),
        "git_dirty_files": code_dirty_files(),
        "rounds": rounds,
        "backlog": backlog,
        "summary": summary,
    }
    print(f"\ncallbacks bench ({args.store}, {args.messages:,} messages per round)\n")
    print("| round | callbacks | e2e delivered/s | p50 ms | p99 ms | callbacks/s (live) | CPU ms/message:"
          " gateway, sender |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rounds:
        live = r.get("callbacks_per_second_live", "-")
        cpu = f"{r['gateway_cpu_ms_per_message']}, {r.get('sender_cpu_ms_per_message', '-')}"
        print(f"| {r['round']} | {r['callbacks']} | {r['e2e_delivered_per_second']:,} | {r['e2e_p50_ms']:.0f} |"
              f" {r['e2e_p99_ms']:.0f} | {live} | {cpu} |")  # fmt: skip
    print(f"\non/off: {summary['on_over_off']}; backlog: {backlog}")
    mode = (
        ""
        if args.callback_sender == "process" and args.sender_cpu == "other"
        else ("-inline" if args.callback_sender == "inline" else "-same-core")
    )
    out = args.out or REPO / "bench" / "results" / (
        f"callbacks{'-smoke' if args.smoke else ''}-{args.store}{mode}-{dt.date.today().isoformat()}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
