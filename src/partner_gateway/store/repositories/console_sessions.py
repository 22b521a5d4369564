"""The partner console's sessions (console/sessions.py says what they are for).

Only the token's hash is stored: a copy of the table signs no one in. A session is valid while
its API key is: the look-up joins api_keys, so revoking the key ends every session made with it
at the next request, in every API process, with no cache in between.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.store.tables import api_keys, console_sessions


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    token_hash: str
    company_id: str
    api_key_id: str
    csrf_token: str
    created_at: int
    expires_at: int
    last_seen_at: int


class ConsoleSessionRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def create(self, session: ConsoleSession) -> None:
        await self._connection.execute(
            insert(console_sessions).values(
                token_hash=session.token_hash,
                company_id=session.company_id,
                api_key_id=session.api_key_id,
                csrf_token=session.csrf_token,
                created_at=session.created_at,
                expires_at=session.expires_at,
                last_seen_at=session.last_seen_at,
            )
        )

    async def find(self, token_hash: str) -> ConsoleSession | None:
        """The session of a token's hash while its key is active (expiry is the caller's rule)."""
        row = (
            await self._connection.execute(
                select(
                    console_sessions.c.token_hash,
                    console_sessions.c.company_id,
                    console_sessions.c.api_key_id,
                    console_sessions.c.csrf_token,
                    console_sessions.c.created_at,
                    console_sessions.c.expires_at,
                    console_sessions.c.last_seen_at,
                )
                .join(api_keys, api_keys.c.id == console_sessions.c.api_key_id)
                .where(console_sessions.c.token_hash == token_hash, api_keys.c.revoked_at.is_(None))
            )
        ).first()
        return ConsoleSession(*row) if row else None

    async def touch(self, token_hash: str, now: int) -> None:
        await self._connection.execute(
            update(console_sessions)
            .where(console_sessions.c.token_hash == token_hash)
            .values(last_seen_at=now)
        )

    async def delete(self, token_hash: str) -> None:
        await self._connection.execute(
            delete(console_sessions).where(console_sessions.c.token_hash == token_hash)
        )

    async def delete_for_key(self, api_key_id: str) -> int:
        """End the sessions of a key (it is being revoked): how many there were."""
        result = await self._connection.execute(
            delete(console_sessions).where(console_sessions.c.api_key_id == api_key_id)
        )
        return int(result.rowcount or 0)

    async def purge(self, now: int, idle_ms: int) -> int:
        """Delete the sessions past their absolute or idle expiry: how many."""
        result = await self._connection.execute(
            delete(console_sessions).where(
                or_(console_sessions.c.expires_at <= now, console_sessions.c.last_seen_at <= now - idle_ms)
            )
        )
        return int(result.rowcount or 0)
