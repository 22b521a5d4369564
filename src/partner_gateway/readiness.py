"""Whether a process can do its role's work now (SPEC §7 `/ready`): named checks, each bounded in time.

Every process checks its store (one `SELECT 1`); a worker of a cluster checks its broker too. A
check answers None when all is well, or what is wrong in words an operator can act on; one that
takes longer than `CHECK_TIMEOUT_SECONDS` counts as failed, so a load balancer's probe is never
held by a store that hangs. Liveness (`/health`) asks nothing of them: a process whose database is
gone is alive, and should be taken out of rotation, not restarted. A process that is shutting
down is not ready whatever its checks say (`stopping`, set by the drain: shutdown.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from partner_gateway.store.database import Database

CHECK_TIMEOUT_SECONDS = 2.0

Check = Callable[[], Awaitable[str | None]]
"""A readiness check: None when ready, else what is wrong."""


class Readiness:
    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._stopping: str | None = None

    def stopping(self, why: str) -> None:
        """From now on the process is not ready: it drains (load balancers should move away)."""
        self._stopping = why

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def problems(self) -> dict[str, str]:
        """What is wrong, by check; empty when the process is ready. The checks run together."""
        names = list(self._checks)
        answers = await asyncio.gather(*(self._run(self._checks[name]) for name in names))
        problems = {name: answer for name, answer in zip(names, answers, strict=True) if answer is not None}
        if self._stopping is not None:
            problems = {"shutdown": self._stopping, **problems}
        return problems

    @staticmethod
    async def _run(check: Check) -> str | None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                return await check()
        except TimeoutError:
            return f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
        except Exception as error:  # the check's own failure is the answer, not a crash
            return f"{type(error).__name__}: {error}".splitlines()[0][:200]


def store_check(database: Database) -> Check:
    async def check() -> str | None:
        async with database.read() as connection:
            await connection.execute(text("SELECT 1"))
        return None

    return check
