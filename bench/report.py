"""Figures, their ceilings, issue 6's goals, and how they are shown: a table, JSON, docs/performance.md.

A figure is a rate with its latency. Its ceilings are figures of the same run that bound it from
above (the raw ASGI app and /health for anything over HTTP, the raw driver for look-ups), so a
ratio factors the machine out. The goals are issue 6's, for one API process on one core.

Re-render docs/performance.md from saved reports (one table per store; a later report of a store
replaces an earlier one):

    .venv/bin/python bench/report.py bench/results/suite-sqlite-2026-11-27.json bench/results/suite-postgres-2026-11-27.json
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import REPO

PERFORMANCE_MD = REPO / "docs" / "performance.md"
BEGIN = "<!-- bench:generated:begin (written by bench/report.py; edit outside this block) -->"
END = "<!-- bench:generated:end -->"
STORE_ORDER = ("sqlite", "postgres")
PRIMARY_DRIVER = {"sqlite": "aiosqlite", "postgres": "asyncpg"}


@dataclass
class Ceiling:
    name: str
    rate: float
    ratio: float


@dataclass
class Figure:
    key: str
    label: str
    unit: str  # req/s, ops/s, msg/s
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    ceilings: list[Ceiling] = field(default_factory=list)
    goal: str | None = None
    holds: bool | None = None
    flags: list[str] = field(default_factory=list)  # e.g. "capped", "incomplete"
    details: dict[str, Any] = field(default_factory=dict)


# -- ceilings and goals ------------------------------------------------------------------------------

HTTP_CEILINGS = ("raw_asgi", "health")
CEILINGS: dict[str, tuple[str, ...]] = {
    "health": ("raw_asgi",),
    "single": (*HTTP_CEILINGS, "driver.point"),
    "raw_granian": ("raw_asgi",),
    "single_granian": ("raw_granian", "single", "driver.point"),
    "single_granian_api": ("raw_granian", "single_limits_on_1", "driver.point"),
    "batch_100": ("driver.in100", *HTTP_CEILINGS),
    "batch_500": ("driver.in500", *HTTP_CEILINGS),
    "query_5000": ("driver.in5000", *HTTP_CEILINGS),
    "history_first": HTTP_CEILINGS,
    "history_deep": HTTP_CEILINGS,
    "sends_api": HTTP_CEILINGS,
    "sends_all": HTTP_CEILINGS,
    "e2e": ("sends_all",),
    "workers_1": ("sends_api",),
    "workers_2": ("sends_api",),
}
SHORT_NAMES = {
    "raw_asgi": "ASGI",
    "raw_granian": "granian ASGI",
    "single": "uvicorn's",
    "single_limits_on_1": "uvicorn's role api",
    "health": "/health",
    "sends_all": "accepted",
    "sends_api": "accepted",
}


def _resolve(key: str, store: str) -> str:
    """`driver.point` means the store's own driver (aiosqlite on SQLite, asyncpg on PostgreSQL)."""
    return f"{key}.{PRIMARY_DRIVER[store]}" if key.startswith("driver.") else key


def _short(key: str) -> str:
    if key.startswith("driver."):
        kind, driver = key.split(".")[1:]
        return f"{driver} {'point' if kind == 'point' else 'IN-' + kind.removeprefix('in')}"
    return SHORT_NAMES.get(key, key)


Goal = Callable[[Figure, dict[str, Figure]], tuple[str, bool | None]]


def _ratio_of(figure: Figure, name: str) -> float | None:
    return next((c.ratio for c in figure.ceilings if c.name == name), None)


def _goal_single_granian(f: Figure, _: dict[str, Figure]) -> tuple[str, bool | None]:
    ceiling = _ratio_of(f, "granian ASGI")
    holds = ceiling is not None and ceiling >= 0.50 and (f.p99_ms or 1e9) < 5
    return "≥50 % of granian ASGI, p99 <5 ms (issue 20)", holds


def _goal_single(f: Figure, _: dict[str, Figure]) -> tuple[str, bool | None]:
    asgi = _ratio_of(f, "ASGI")
    holds = f.rate >= 10_000 and asgi is not None and asgi >= 0.40 and (f.p99_ms or 1e9) < 10
    return "≥10,000/s, ≥40 % of ASGI, p99 <10 ms", holds


def _goal_batch(f: Figure, _: dict[str, Figure]) -> tuple[str, bool | None]:
    driver = next((c for c in f.ceilings if "IN-" in c.name), None)
    return "≥95 % of driver IN-list (issue 20; issue 6: 80 %)", driver is not None and driver.ratio >= 0.95


def _goal_deep(f: Figure, figures: dict[str, Figure]) -> tuple[str, bool | None]:
    first = figures.get("history_first")
    if first is None or not first.p50_ms or f.p50_ms is None:
        return "p50 ≤1.2× first page", None
    return f"p50 ≤1.2× first page ({f.p50_ms / first.p50_ms:.2f}×)", f.p50_ms <= 1.2 * first.p50_ms


def _goal_rate(minimum: int, note: str = "") -> Goal:
    return lambda f, _: (f"≥{minimum:,}/s{note}", f.rate >= minimum)


def _goal_delivered(minimum: int) -> Goal:
    def goal(f: Figure, _: dict[str, Figure]) -> tuple[str, bool | None]:
        duplicates = f.details.get("carrier", {}).get("duplicates")
        holds = f.rate >= minimum and duplicates in (0, None)
        return f"≥{minimum:,}/s, 0 duplicates (issue 20)", holds

    return goal


def _goal_more_workers(f: Figure, figures: dict[str, Figure]) -> tuple[str, bool | None]:
    one = figures.get("workers_1")
    if one is None or not one.rate:
        return "more than 1 worker (issue 20)", None
    return f"more than 1 worker (issue 20; {f.rate / one.rate:.2f}×)", f.rate > one.rate


GOALS: dict[str, Goal] = {
    "single": _goal_single,
    "single_granian": _goal_single_granian,
    "single_granian_api": _goal_single_granian,
    "batch_500": _goal_batch,
    "history_deep": _goal_deep,
    "sends_api": _goal_rate(10_000, " (issue 20; issue 6: 5,000)"),
    "sends_all": _goal_rate(5_000),
    "e2e": _goal_delivered(3_000),
    "workers_2": _goal_more_workers,
}

LOOKUPS_AGAINST_SQLITE = ("single", "batch_100", "batch_500", "query_5000", "history_first", "history_deep")
POSTGRES_SHARE_GOAL = 0.70
"""Issue 20: the PostgreSQL table within 70 % of SQLite's on every look-up figure."""


def postgres_against_sqlite(sqlite: Sequence[Figure], postgres: Sequence[Figure]) -> str | None:
    """The note comparing PostgreSQL's look-ups with SQLite's of the same run (issue 20's goal)."""
    lite = {f.key: f for f in sqlite}
    shares = []
    for figure in postgres:
        if figure.key in LOOKUPS_AGAINST_SQLITE and figure.key in lite and lite[figure.key].rate:
            share = figure.rate / lite[figure.key].rate
            mark = "holds" if share >= POSTGRES_SHARE_GOAL else "**short**"
            shares.append(f"{figure.key} {share:.0%} ({mark})")
    if not shares:
        return None
    goal = f"{POSTGRES_SHARE_GOAL:.0%}"
    return (
        f"Look-ups as a share of SQLite's in the same run (issue 20: at least {goal}): "
        + ", ".join(shares)
        + "."
    )


def assess(figures: list[Figure], store: str) -> None:
    """Fill in each figure's ceilings (with ratios) and its goal, from the other figures of the store."""
    by_key = {f.key: f for f in figures}
    for figure in figures:
        figure.ceilings = []
        for wanted in CEILINGS.get(figure.key, ()):
            ceiling = by_key.get(_resolve(wanted, store))
            if ceiling is not None and ceiling.rate > 0:
                figure.ceilings.append(Ceiling(_short(ceiling.key), ceiling.rate, figure.rate / ceiling.rate))
    for figure in figures:
        goal = GOALS.get(figure.key)
        if goal is not None:
            figure.goal, figure.holds = goal(figure, by_key)


# -- rendering ----------------------------------------------------------------------------------------

COLUMNS = ("figure", "rate", "p50", "p99", "ceiling", "ratio", "goal", "holds")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def _row(figure: Figure) -> tuple[str, ...]:
    flags = f" ({', '.join(figure.flags)})" if figure.flags else ""
    holds = {True: "yes", False: "**no**", None: "-"}[figure.holds]
    return (
        figure.label + flags,
        f"{figure.rate:,.0f} {figure.unit}",
        _ms(figure.p50_ms),
        _ms(figure.p99_ms),
        " · ".join(f"{c.name} {c.rate:,.0f}" for c in figure.ceilings) or "-",
        " · ".join(f"{c.ratio:.0%} {c.name}" for c in figure.ceilings) or "-",
        figure.goal or "-",
        holds,
    )


ORDER = (
    "driver.",
    "raw_asgi",
    "raw_granian",
    "health",
    "single",
    "single_granian",
    "batch_100",
    "batch_500",
    "query_5000",
    "history_first",
    "history_deep",
    "sends_api",
    "sends_all",
    "e2e",
    "workers_1",
    "workers_2",
)


def ordered(figures: Sequence[Figure]) -> list[Figure]:
    """Drivers, ceilings, look-ups, sends, delivery: the table's order, whatever the run's was."""

    def rank(figure: Figure) -> int:
        return next((i for i, key in enumerate(ORDER) if figure.key.startswith(key)), len(ORDER))

    return sorted(figures, key=rank)  # stable: drivers keep their measured order


def text_table(figures: Sequence[Figure]) -> str:
    """The stdout table: the markdown columns, aligned."""
    figures = ordered(figures)
    header = ("figure", "rate", "p50 ms", "p99 ms", "ceiling", "ratio", "goal", "holds")
    rows = [header, *(_row(f) for f in figures)]
    rows = [tuple(cell.replace("**", "") for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def markdown_table(figures: Sequence[Figure]) -> str:
    header = "| figure | rate | p50 ms | p99 ms | ceiling | ratio | goal | holds |"
    figures = ordered(figures)
    lines = [header, "|---|---:|---:|---:|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in _row(f)) + " |" for f in figures]
    return "\n".join(lines)


def figures_of(store_report: dict[str, Any]) -> list[Figure]:
    """Figures back from a JSON report's store section."""
    figures = []
    for raw in store_report["figures"]:
        raw = dict(raw)
        raw["ceilings"] = [Ceiling(**c) for c in raw.get("ceilings", [])]
        figures.append(Figure(**raw))
    return figures


def figure_dict(figure: Figure) -> dict[str, Any]:
    return asdict(figure)


def store_section(report: dict[str, Any], store: str) -> str:
    """One store's generated section: where and when it ran, then the table and notes."""
    section = report["stores"][store]
    figures = figures_of(section)
    assess(figures, store)  # today's goals, also for a report measured before they changed
    machine = report["machine"]
    options = report["options"]
    commit = (machine.get("git_commit") or "?")[:10]
    dirty_files = machine.get("git_dirty_files") or []
    dirty = f", plus uncommitted changes in {len(dirty_files)} files under src/" if dirty_files else ""
    seeding = section.get("seeding", {})
    software = [f"Python {machine.get('python')}", f"SQLite {machine.get('sqlite')}"]
    if section.get("server_version"):
        software.append(section["server_version"])
    load = machine.get("loadavg_at_start")
    busy = f" Load average {load[0]:g} (others' work) when the run began." if load else ""
    lines = [
        f"### {section['label']}",
        "",
        f"{report['date'][:10]}, commit `{commit}`{dirty}; {machine.get('cpu_model')}, {machine.get('nproc')} CPUs, "
        f"{machine.get('mem_total_gib')} GiB, Linux {machine.get('kernel')}, {', '.join(software)}.{busy}",
        "",
        f"Store: {seeding.get('messages', 0):,} messages ({options['companies']} companies, the first holding "
        f"{options['big_share']:.0%}), seeded in {seeding.get('seconds', '?')} s. "
        f"{options['duration_s']:g} s per HTTP figure after {options['warmup_s']:g} s of warm-up, wrk -t1 -c{options['connections']}; "
        f"{_pinning(options.get('cpu_pinning'))}. Command: `{report['command']}`.",
        "",
        markdown_table(figures),
    ]
    notes = [*section.get("notes", []), *_stuck_notes(figures)]
    if store == "postgres" and "sqlite" in report["stores"]:
        sqlite = figures_of(report["stores"]["sqlite"])
        against = postgres_against_sqlite(sqlite, figures)
        notes += [against] if against else []
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines)


def _stuck_notes(figures: Sequence[Figure]) -> list[str]:
    """For an incomplete end-to-end figure: what the undelivered messages were left as."""
    notes = []
    for figure in figures:
        stuck = figure.details.get("undelivered")
        if stuck:
            carrier = figure.details.get("carrier", {})
            left = "; ".join(f"{count:,} × {state}" for state, count in stuck.items())
            acked = carrier.get("receipts_acknowledged")
            seen = ""
            if acked is not None:
                seen = (
                    f" (the carrier sent {carrier.get('receipts_sent'):,} receipts, {acked:,} acknowledged)"
                )
            notes.append(f"{figure.label}: not DELIVERED when the wait ended: {left}{seen}.")
    return notes


def _pinning(pinning: dict[str, int] | None) -> str:
    if not pinning:
        return "no CPU pinning"
    return f"wrk on CPU {pinning['wrk']}, every gateway process on CPU {pinning['server']}"


def _store_marker(store: str, end: bool = False) -> str:
    return f"<!-- bench:store:{store}:{'end' if end else 'begin'} -->"


def render_block(sections: dict[str, str]) -> str:
    parts = [BEGIN, "## Measured", ""]
    for store in STORE_ORDER:
        if store in sections:
            parts += [_store_marker(store), sections[store].strip(), _store_marker(store, end=True), ""]
    parts.append(END)
    return "\n".join(parts)


def existing_sections(text: str) -> dict[str, str]:
    found = {}
    for store in STORE_ORDER:
        pattern = re.escape(_store_marker(store)) + r"\n(.*?)\n" + re.escape(_store_marker(store, end=True))
        match = re.search(pattern, text, re.S)
        if match:
            found[store] = match.group(1)
    return found


INTRO = """# Performance

What the gateway does per second on one machine, next to what the machine can do at all, measured
by one command (`bench/run.py`, see [bench/README.md](../bench/README.md)) and written into the
block below by it. Everything here above the generated block and below it is written by hand; a
new run replaces only the tables of the stores it measured.

How to read the tables:

- **rate**: requests per second for HTTP figures (wrk, one thread, 64 connections, closed loop),
  operations per second for the drivers (one connection, one statement after the other, in-process),
  messages per second for sends (202s) and end to end (DELIVERED).
- **p50/p99**: per request, from send to last byte (so at 64 connections mostly queueing: about
  64 / rate); for the drivers per statement; end to end per message, from accepted to DELIVERED.
- **ceiling / ratio**: the figures of the same run that bound this one from above, and this figure as
  a share of each. *ASGI* is a static JSON on the very server software and settings the gateway uses
  (`bench/raw_asgi.py`), */health* the gateway's cheapest route, *aiosqlite/asyncpg point* and
  *IN-n* the driver alone. The ratios factor the machine out; compare those across machines.
- **goal / holds**: issue 6's goals, raised by issue 20 where it raised them (a goal met is the
  floor), set for one API process on one core with the 1,000,000-message SQLite store; the
  PostgreSQL table is held to the same numbers for comparison, and its look-ups to 70 % of
  SQLite's in the same run (the note under its table).
- One server process on one CPU (wrk on the other): figures are per core of one process, not what a
  deployment with several processes does. PostgreSQL and RabbitMQ are not pinned: they share both
  CPUs with the gateway and wrk, which the PostgreSQL figures pay for.
- On a shared machine figures move from one run to the next; ratios within a run move less,
  though a slow ceiling inflates the ratio under it. Re-run before reading much into one figure.
"""

JASMIN = """## Side by side with Jasmin

_To be written: the comparison with Jasmin 0.11.1 (bench/sidebyside.py)._
"""


def write_performance_md(reports: Sequence[dict[str, Any]], path: Path = PERFORMANCE_MD) -> None:
    """Replace the generated block's sections for the stores in `reports`; keep everything else."""
    text = path.read_text() if path.exists() else INTRO + "\n" + BEGIN + "\n" + END + "\n\n" + JASMIN
    if BEGIN not in text or END not in text:
        text = text.rstrip() + "\n\n" + BEGIN + "\n" + END + "\n"
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    sections = existing_sections(block)
    for report in reports:
        for store in report["stores"]:
            sections[store] = store_section(report, store)
    path.write_text(head + render_block(sections) + tail)


def main(argv: Sequence[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: bench/report.py REPORT.json [REPORT.json ...]", file=sys.stderr)
        return 2
    write_performance_md([json.loads(p.read_text()) for p in paths])
    print(f"wrote {PERFORMANCE_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
