"""Idempotency keys: a retried send returns the first answer and sends nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.store.tables import idempotency_keys

IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    message_id: str
    status_code: int
    body: bytes


class IdempotencyRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def find(self, company_id: str, key: str, now: int) -> StoredResponse | None:
        """The live entry for this key; an entry older than the window is forgotten here."""
        row = (
            await self._connection.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.company_id == company_id, idempotency_keys.c.key == key
                )
            )
        ).first()
        if row is None:
            return None
        if row.created_at <= now - IDEMPOTENCY_WINDOW_MS:
            await self._connection.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.company_id == company_id, idempotency_keys.c.key == key
                )
            )
            return None
        return StoredResponse(
            request_hash=row.request_hash,
            message_id=row.message_id,
            status_code=row.status_code,
            body=row.response_body.encode(),
        )

    async def remember(self, company_id: str, key: str, now: int, response: StoredResponse) -> None:
        await self._connection.execute(
            insert(idempotency_keys).values(
                company_id=company_id,
                key=key,
                request_hash=response.request_hash,
                message_id=response.message_id,
                status_code=response.status_code,
                response_body=response.body.decode(),
                created_at=now,
            )
        )
