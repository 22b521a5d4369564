"""Companies and their API keys."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain import ids
from partner_gateway.store.tables import api_keys, companies

KEY_PREFIX_LENGTH = 12


def hash_api_key(plain_key: str) -> str:
    return ids.hash_token(plain_key)


@dataclass(frozen=True, slots=True)
class Company:
    id: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: str
    company_id: str
    prefix: str
    label: str | None
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    info: ApiKeyInfo
    plain_key: str  # shown once, never stored


class CompanyRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def create(self, name: str, now: int) -> Company:
        company = Company(id=ids.new_company_id(), name=name, created_at=now)
        await self._connection.execute(
            insert(companies).values(id=company.id, name=company.name, created_at=company.created_at)
        )
        return company

    async def get(self, company_id: str) -> Company | None:
        row = (await self._connection.execute(select(companies).where(companies.c.id == company_id))).first()
        return Company(id=row.id, name=row.name, created_at=row.created_at) if row else None

    async def issue_key(self, company_id: str, now: int, label: str | None = None) -> IssuedKey:
        plain = ids.new_api_key_secret()
        info = ApiKeyInfo(
            id=ids.new_api_key_id(),
            company_id=company_id,
            prefix=plain[:KEY_PREFIX_LENGTH],
            label=label,
            created_at=now,
            revoked_at=None,
        )
        await self._connection.execute(
            insert(api_keys).values(
                id=info.id,
                company_id=company_id,
                key_hash=hash_api_key(plain),
                prefix=info.prefix,
                label=label,
                created_at=now,
            )
        )
        return IssuedKey(info=info, plain_key=plain)

    async def list_keys(self, company_id: str) -> list[ApiKeyInfo]:
        rows = await self._connection.execute(
            select(api_keys).where(api_keys.c.company_id == company_id).order_by(api_keys.c.created_at)
        )
        return [
            ApiKeyInfo(
                id=row.id,
                company_id=row.company_id,
                prefix=row.prefix,
                label=row.label,
                created_at=row.created_at,
                revoked_at=row.revoked_at,
            )
            for row in rows
        ]

    async def revoke_key(self, key_id: str, now: int) -> bool:
        """Revoke a key; False when no such key is active."""
        result = await self._connection.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return result.rowcount > 0

    async def revoke_company_key(self, company_id: str, key_id: str, now: int) -> bool:
        """Revoke one of the company's own keys (the console); False when it has no such active key."""
        result = await self._connection.execute(
            update(api_keys)
            .where(
                api_keys.c.id == key_id, api_keys.c.company_id == company_id, api_keys.c.revoked_at.is_(None)
            )
            .values(revoked_at=now)
        )
        return result.rowcount > 0

    async def active_key_for_hash(self, key_hash: str) -> tuple[str, str] | None:
        """(key id, company id) of an active key, by its hash: the console's sign-in."""
        row = (
            await self._connection.execute(
                select(api_keys.c.id, api_keys.c.company_id).where(
                    api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
                )
            )
        ).first()
        return (str(row[0]), str(row[1])) if row else None

    async def company_for_key(self, plain_key: str) -> str | None:
        """The company an active key belongs to: one unique-index look-up."""
        return await self.company_for_key_hash(hash_api_key(plain_key))

    async def company_for_key_hash(self, key_hash: str) -> str | None:
        """The same, for a key already hashed with hash_api_key."""
        result = await self._connection.execute(_COMPANY_FOR_KEY, {"key_hash": key_hash})
        row = result.first()
        return str(row[0]) if row else None


_COMPANY_FOR_KEY = select(api_keys.c.company_id).where(
    api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)
