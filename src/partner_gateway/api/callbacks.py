"""Callback settings: a company's default callback URL and its signing secret (SPEC §5).

`GET /callbacks/settings` answers `{"url", "secretSet"}`; `PUT` sets or clears the URL and
answers the same, plus `secret` when that request made one (the first URL, or `rotateSecret`):
the only answer that ever carries it. A URL is checked by SPEC §5's rules, resolution included
(callbacks/urls.py), and refused with a 400 naming `url` and the reason.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, put
from litestar.params import JSONBody

from partner_gateway.api.deps import CompanyId, RuntimeDep
from partner_gateway.api.problems import invalid, problem_responses
from partner_gateway.callbacks.urls import RefusedUrl
from partner_gateway.domain import sending
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.callback_settings import CallbackSettingsRepository

SETTINGS_PATH = "/callbacks/settings"


class CallbackSettingsUpdate(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    url: Annotated[
        str | None,
        msgspec.Meta(
            description="The company's default callback URL: absolute http(s), public host; null clears it "
            "(the secret is kept)"
        ),
    ]
    rotate_secret: Annotated[
        bool,
        msgspec.Meta(description="Make a new signing secret; the previous one signs too for 24 hours"),
    ] = False


class CallbackSettingsResponse(msgspec.Struct, rename="camel", omit_defaults=True):
    url: str | None
    secret_set: Annotated[bool, msgspec.Meta(description="Whether the company has a signing secret")]
    secret: Annotated[
        str | None,
        msgspec.Meta(description="The signing secret this request made; shown only in this answer"),
    ] = None


async def check_callback_url(runtime: Runtime, url: str, field: str, problems: sending.Problems) -> None:
    """Add a problem for `field` when `url` is not one the gateway may push to (resolved, with
    the process's short cache of host answers)."""
    try:
        await runtime.callback_urls.check(url)
    except RefusedUrl as refused:
        problems.append((field, refused.reason))


class CallbackSettingsController(Controller):
    tags = ["Callbacks"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        SETTINGS_PATH,
        summary="Callback settings",
        description="The company's default callback URL and whether it has a signing secret (the secret "
        "itself is shown only when it is made).",
        responses=problem_responses(401, 429, 500, 503),
        operation_id="getCallbackSettings",
    )
    async def read(self, company_id: CompanyId, runtime: RuntimeDep) -> CallbackSettingsResponse:
        async with runtime.database.read() as connection:
            settings = await CallbackSettingsRepository(connection, runtime.callback_secrets).get(company_id)
        if settings is None:
            return CallbackSettingsResponse(url=None, secret_set=False)
        return CallbackSettingsResponse(url=settings.url, secret_set=settings.secret_set)

    @put(
        SETTINGS_PATH,
        summary="Set callback settings",
        description="Set the default callback URL (`null` clears it and keeps the secret). The answer "
        "carries `secret` when this request made one: the first time a URL is set, or with "
        "`rotateSecret`. After a rotation every callback is signed with the new and the previous "
        "secret for 24 hours.",
        responses=problem_responses(400, 401, 429, 500, 503),
        operation_id="setCallbackSettings",
    )
    async def update(
        self,
        company_id: CompanyId,
        runtime: RuntimeDep,
        data: JSONBody[CallbackSettingsUpdate],
    ) -> CallbackSettingsResponse:
        if data.url is not None:
            problems: sending.Problems = []
            await check_callback_url(runtime, data.url, "url", problems)
            if problems:
                raise invalid(problems)
        async with runtime.database.write() as connection:
            change = await CallbackSettingsRepository(connection, runtime.callback_secrets).set_url(
                company_id, data.url, now_ms(), rotate_secret=data.rotate_secret
            )
        return CallbackSettingsResponse(
            url=change.settings.url, secret_set=change.settings.secret_set, secret=change.new_secret
        )
