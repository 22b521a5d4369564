"""The callback settings repository on the test's store (SQLite, or PostgreSQL when asked)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from partner_gateway.callbacks.secrets import UnreadableSecret
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.callback_settings import (
    ROTATION_OVERLAP_MS,
    CallbackSettingsRepository,
)
from partner_gateway.store.tables import callback_settings
from support import Partner

T0 = 1_795_000_000_000


async def test_first_url_makes_a_secret_kept_sealed(runtime: Runtime, partner: Partner) -> None:
    async with runtime.database.write() as connection:
        repository = CallbackSettingsRepository(connection, runtime.callback_secrets)
        assert await repository.get(partner.company_id) is None
        change = await repository.set_url(partner.company_id, "https://partner.example/cb", T0)
    assert change.new_secret is not None
    assert change.new_secret.startswith("whsec_")
    assert change.settings.url == "https://partner.example/cb"
    assert change.settings.secret_set
    async with runtime.database.read() as connection:
        stored = (await connection.execute(select(callback_settings))).one()
        repository = CallbackSettingsRepository(connection, runtime.callback_secrets)
        settings = await repository.get(partner.company_id)
        secrets = await repository.signing_secrets(partner.company_id, T0)
    assert change.new_secret not in (stored.secret or "")
    assert settings is not None
    assert settings.url == "https://partner.example/cb"
    assert settings.secret_set
    assert secrets == (change.new_secret,)


async def test_a_new_url_keeps_the_secret_and_clearing_keeps_it_too(
    runtime: Runtime, partner: Partner
) -> None:
    async with runtime.database.write() as connection:
        repository = CallbackSettingsRepository(connection, runtime.callback_secrets)
        first = await repository.set_url(partner.company_id, "https://a.example/", T0)
        second = await repository.set_url(partner.company_id, "https://b.example/", T0 + 1)
        cleared = await repository.set_url(partner.company_id, None, T0 + 2)
        secrets = await repository.signing_secrets(partner.company_id, T0 + 3)
    assert second.new_secret is None
    assert cleared.new_secret is None
    assert cleared.settings.url is None
    assert cleared.settings.secret_set
    assert secrets == (first.new_secret,)


async def test_clearing_with_no_secret_makes_none(runtime: Runtime, partner: Partner) -> None:
    async with runtime.database.write() as connection:
        repository = CallbackSettingsRepository(connection, runtime.callback_secrets)
        change = await repository.set_url(partner.company_id, None, T0)
        assert await repository.signing_secrets(partner.company_id, T0) == ()
    assert change.new_secret is None
    assert not change.settings.secret_set


async def test_rotation_signs_with_both_for_24_hours(runtime: Runtime, partner: Partner) -> None:
    async with runtime.database.write() as connection:
        repository = CallbackSettingsRepository(connection, runtime.callback_secrets)
        old = (await repository.set_url(partner.company_id, "https://a.example/", T0)).new_secret
        rotated = await repository.set_url(
            partner.company_id, "https://a.example/", T0 + 10, rotate_secret=True
        )
        new = rotated.new_secret
        assert new is not None
        assert new != old
        assert rotated.settings.rotated_at == T0 + 10
        assert await repository.signing_secrets(partner.company_id, T0 + 10) == (new, old)
        last = T0 + 10 + ROTATION_OVERLAP_MS - 1
        assert await repository.signing_secrets(partner.company_id, last) == (new, old)
        assert await repository.signing_secrets(partner.company_id, last + 1) == (new,)
        newest = (await repository.set_url(partner.company_id, None, T0 + 20, rotate_secret=True)).new_secret
        assert await repository.signing_secrets(partner.company_id, T0 + 20) == (newest, new)


async def test_ensure_secret_makes_one_once(runtime: Runtime, partner: Partner) -> None:
    async with runtime.database.write() as connection:
        repository = CallbackSettingsRepository(connection, runtime.callback_secrets)
        made = await repository.ensure_secret(partner.company_id, T0)
        assert made is not None
        assert await repository.ensure_secret(partner.company_id, T0 + 1) is None
        change = await repository.set_url(partner.company_id, "https://a.example/", T0 + 2)
        assert change.new_secret is None  # the company has its secret already
        assert await repository.signing_secrets(partner.company_id, T0 + 2) == (made,)


async def test_companies_are_apart(runtime: Runtime, partner: Partner, other_partner: Partner) -> None:
    async with runtime.database.write() as connection:
        repository = CallbackSettingsRepository(connection, runtime.callback_secrets)
        mine = await repository.set_url(partner.company_id, "https://a.example/", T0)
        assert await repository.get(other_partner.company_id) is None
        theirs = await repository.set_url(other_partner.company_id, "https://b.example/", T0)
        assert await repository.signing_secrets(partner.company_id, T0) == (mine.new_secret,)
        assert await repository.signing_secrets(other_partner.company_id, T0) == (theirs.new_secret,)


async def test_concurrent_first_settings_make_one_row(runtime: Runtime, partner: Partner) -> None:
    async def set_once(index: int) -> str | None:
        async with runtime.database.write() as connection:
            repository = CallbackSettingsRepository(connection, runtime.callback_secrets)
            return (await repository.set_url(partner.company_id, f"https://a.example/{index}", T0)).new_secret

    made = [secret for secret in await asyncio.gather(*(set_once(i) for i in range(5))) if secret]
    assert len(made) == 1
    async with runtime.database.read() as connection:
        rows = (await connection.execute(select(callback_settings))).all()
        secrets = await CallbackSettingsRepository(connection, runtime.callback_secrets).signing_secrets(
            partner.company_id, T0
        )
    assert len(rows) == 1
    assert secrets == (made[0],)


async def test_secrets_survive_a_restart_with_the_store_kept_key(runtime: Runtime, partner: Partner) -> None:
    async with runtime.database.write() as connection:
        made = (
            await CallbackSettingsRepository(connection, runtime.callback_secrets).set_url(
                partner.company_id, "https://a.example/", T0
            )
        ).new_secret
    again = await Runtime.start(runtime.settings)
    try:
        async with again.database.read() as connection:
            secrets = await CallbackSettingsRepository(connection, again.callback_secrets).signing_secrets(
                partner.company_id, T0
            )
    finally:
        await again.close()
    assert secrets == (made,)


async def test_a_configured_key_seals_and_only_it_opens(runtime: Runtime, partner: Partner) -> None:
    keyed = await Runtime.start(
        runtime.settings.model_copy(update={"callback_secret_key": SecretStr("key one")})
    )
    try:
        async with keyed.database.write() as connection:
            made = (
                await CallbackSettingsRepository(connection, keyed.callback_secrets).set_url(
                    partner.company_id, "https://a.example/", T0
                )
            ).new_secret
            assert await CallbackSettingsRepository(connection, keyed.callback_secrets).signing_secrets(
                partner.company_id, T0
            ) == (made,)
    finally:
        await keyed.close()
    async with runtime.database.read() as connection:  # the store-kept key: not the configured one
        with pytest.raises(UnreadableSecret):
            await CallbackSettingsRepository(connection, runtime.callback_secrets).signing_secrets(
                partner.company_id, T0
            )
