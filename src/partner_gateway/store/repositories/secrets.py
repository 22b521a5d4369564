"""Secrets the gateway makes for itself and shares between processes through the store."""

from __future__ import annotations

import secrets

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.store.tables import instance_secrets


async def get_or_create(connection: AsyncConnection, name: str, now: int) -> str:
    """The named secret; the first process to ask creates it, every other one reads that."""
    query = select(instance_secrets.c.value).where(instance_secrets.c.name == name)
    value = (await connection.execute(query)).scalar()
    if value is not None:
        return str(value)
    candidate = secrets.token_hex(32)
    try:
        async with connection.begin_nested():
            await connection.execute(
                insert(instance_secrets).values(name=name, value=candidate, created_at=now)
            )
    except IntegrityError:
        return str((await connection.execute(query)).scalar_one())
    return candidate
