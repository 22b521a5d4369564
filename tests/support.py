"""Helpers shared by the tests (importable as `support`: pytest puts tests/ on the path)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.companies import CompanyRepository

BASE = "/partner-gateway/v1"


@dataclass(frozen=True)
class Partner:
    company_id: str
    api_key: str
    api_key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def make_partner(runtime: Runtime, name: str = "Acme") -> Partner:
    async with runtime.database.write() as connection:
        repository = CompanyRepository(connection)
        company = await repository.create(name, now_ms())
        issued = await repository.issue_key(company.id, now_ms())
    return Partner(company.id, issued.plain_key, issued.info.id)


async def seed(
    runtime: Runtime,
    company_id: str,
    created_at: list[int],
    *,
    channel: str = "SMS",
    to: str = "+4915112345678",
    status: str | None = None,
) -> list[str]:
    """Store accepted messages with chosen creation times (and optionally a status); their ids."""
    from sqlalchemy import update

    from partner_gateway.domain.ids import new_message_id
    from partner_gateway.domain.messages import NewMessage
    from partner_gateway.domain.statuses import Channel
    from partner_gateway.store.repositories.messages import MessageRepository
    from partner_gateway.store.tables import messages

    ids = []
    async with runtime.database.write() as connection:
        repository = MessageRepository(connection)
        for stamp in created_at:
            message = NewMessage(
                id=new_message_id(stamp),
                company_id=company_id,
                channel=Channel(channel),
                to=to,
                sender=None,
                reference=None,
                created_at=stamp,
                expires_at=stamp + 86_400_000,
                callback_url=None,
                body="{}",
            )
            await repository.add_accepted(message)
            ids.append(message.id)
        if status is not None:
            await connection.execute(update(messages).where(messages.c.id.in_(ids)).values(status=status))
    return ids


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(
    env: dict[str, str], *args: str, check: bool = True, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `partner-gateway` command the way an operator or a script would."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    executable = Path(sys.executable).parent / "partner-gateway"
    return subprocess.run(
        [str(executable), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
        cwd=cwd,
    )


def running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may leave a dead orphan unreaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
