"""A company's callback settings: its default URL and its signing secrets, sealed at rest.

A secret is made the first time a URL is set (or a send's callbackUrl needs one: `ensure_secret`)
and on a rotation; the answer that made it is the only one that carries it. After a rotation the
previous secret signs too for `ROTATION_OVERLAP_MS` (`signing_secrets`); a second rotation within
that time drops the oldest.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.callbacks.secrets import SecretBox, new_secret
from partner_gateway.store.dialects import insert_ignoring_duplicates
from partner_gateway.store.tables import callback_settings

ROTATION_OVERLAP_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    url: str | None
    secret_set: bool
    rotated_at: int | None
    updated_at: int


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """The settings after a change, and the secret made by it (shown once), if one was."""

    settings: CallbackSettings
    new_secret: str | None


class CallbackSettingsRepository:
    def __init__(self, connection: AsyncConnection, box: SecretBox) -> None:
        self._connection = connection
        self._box = box

    async def get(self, company_id: str) -> CallbackSettings | None:
        row = (
            await self._connection.execute(
                select(
                    callback_settings.c.url,
                    callback_settings.c.secret.is_not(None),
                    callback_settings.c.rotated_at,
                    callback_settings.c.updated_at,
                ).where(callback_settings.c.company_id == company_id)
            )
        ).first()
        return CallbackSettings(row[0], bool(row[1]), row[2], row[3]) if row else None

    async def set_url(
        self, company_id: str, url: str | None, now: int, *, rotate_secret: bool = False
    ) -> SettingsChange:
        """Set (or, with None, clear) the default URL; a secret is made when the company has
        none and a URL is set, or when asked to rotate. Run in a write transaction."""
        row = await self._locked_row(company_id, now)
        current, previous, rotated_at = row.secret, row.previous_secret, row.rotated_at
        made: str | None = None
        if rotate_secret or (current is None and url is not None):
            made = new_secret()
            if current is not None:
                previous, rotated_at = current, now
            current = self._box.seal(made, company_id)
        await self._connection.execute(
            update(callback_settings)
            .where(callback_settings.c.company_id == company_id)
            .values(url=url, secret=current, previous_secret=previous, rotated_at=rotated_at, updated_at=now)
        )
        return SettingsChange(CallbackSettings(url, current is not None, rotated_at, now), made)

    async def ensure_secret(self, company_id: str, now: int) -> str | None:
        """Make the company's secret if it has none (a send's callbackUrl with no default URL
        set, SPEC §5): the new secret, or None when there was one already."""
        row = await self._locked_row(company_id, now)
        if row.secret is not None:
            return None
        made = new_secret()
        await self._connection.execute(
            update(callback_settings)
            .where(callback_settings.c.company_id == company_id)
            .values(secret=self._box.seal(made, company_id), updated_at=now)
        )
        return made

    async def signing_secrets(self, company_id: str, at: int) -> tuple[str, ...]:
        """The secrets a callback sent at `at` is signed with: the current one, then the
        previous one within ROTATION_OVERLAP_MS of a rotation. Empty: no secret yet."""
        row = (
            await self._connection.execute(
                select(
                    callback_settings.c.secret,
                    callback_settings.c.previous_secret,
                    callback_settings.c.rotated_at,
                ).where(callback_settings.c.company_id == company_id)
            )
        ).first()
        if row is None or row.secret is None:
            return ()
        secrets = [self._box.open(row.secret, company_id)]
        overlapping = row.rotated_at is not None and at < row.rotated_at + ROTATION_OVERLAP_MS
        if row.previous_secret is not None and overlapping:
            secrets.append(self._box.open(row.previous_secret, company_id))
        return tuple(secrets)

    async def _locked_row(self, company_id: str, now: int) -> _Row:
        # The row exists before it is read, locked (PostgreSQL), so two concurrent first
        # settings cannot both insert, and a rotation reads the secret it replaces.
        dialect = self._connection.dialect.name
        await self._connection.execute(
            insert_ignoring_duplicates(
                dialect, callback_settings, {"company_id": company_id, "updated_at": now}
            )
        )
        query = select(
            callback_settings.c.secret, callback_settings.c.previous_secret, callback_settings.c.rotated_at
        ).where(callback_settings.c.company_id == company_id)
        if dialect == "postgresql":
            query = query.with_for_update()
        row = (await self._connection.execute(query)).one()
        return _Row(row.secret, row.previous_secret, row.rotated_at)


@dataclass(frozen=True, slots=True)
class _Row:
    secret: str | None
    previous_secret: str | None
    rotated_at: int | None
