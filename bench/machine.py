"""What a figure was measured on: CPU, memory, kernel, versions, and the code's commit.

Figures from different machines are not comparable; figures from a dirty tree are not the
commit's, so the package's uncommitted files are listed too.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from wrk import wrk_version

import partner_gateway

# The code under test, which is not this checkout's when PYTHONPATH points at another commit's
# worktree (how two commits are compared in one session).
CODE_DIR = Path(partner_gateway.__file__).resolve().parent

PACKAGES = (
    "partner-gateway",
    "litestar",
    "uvicorn",
    "httptools",
    "uvloop",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "aio-pika",
    "msgspec",
)


def _read_field(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def code_commit() -> str:
    """The commit of the partner_gateway package being measured."""
    return _git("rev-parse", "HEAD")


def code_dirty_files() -> list[str]:
    """The package's uncommitted files: a figure measured with any is not its commit's."""
    return [line for line in _git("status", "--porcelain", "--", ".").splitlines() if line]


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=CODE_DIR, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _command_version(*command: str) -> str | None:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


def machine_facts() -> dict[str, Any]:
    mem = _read_field("/proc/meminfo", "MemTotal:")
    mem_kib = int(mem.split()[0]) if mem else None
    return {
        "nproc": os.cpu_count(),
        # Others' work on the machine when the run began (1, 5, 15 min): high values explain low figures.
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpu_model": _read_field("/proc/cpuinfo", "model name") or "?",
        "mem_total_gib": round(mem_kib / 1024 / 1024, 1) if mem_kib else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": wrk_version(),
        "postgres": _command_version("psql", "--version"),
        "packages": {package: _version(package) for package in PACKAGES},
        "git_commit": code_commit(),
        "git_dirty_files": code_dirty_files(),
    }
