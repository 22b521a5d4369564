"""The company's callback settings (URL, secret rotation, recent failures) and its API keys."""

from __future__ import annotations

from litestar import Response, get, post
from litestar.response import Redirect

from partner_gateway.api.callbacks import (
    CallbackSettingsResponse,
    CallbackSettingsUpdate,
    read_callback_settings,
    update_callback_settings,
)
from partner_gateway.api.deps import RuntimeDep
from partner_gateway.api.problems import ProblemError
from partner_gateway.console import sessions
from partner_gateway.console.common import (
    AnyRequest,
    PathText,
    changed,
    field,
    render,
    session_or_none,
    to_sign_in,
)
from partner_gateway.console.sessions import SignedIn
from partner_gateway.domain.timefmt import format_ms, now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories import callback_deliveries
from partner_gateway.store.repositories.companies import CompanyRepository
from partner_gateway.store.repositories.console_sessions import ConsoleSessionRepository

FAILURES_SHOWN = 20
FAILURES_DAYS = 7
MAX_LABEL = 100


async def _callbacks_page(
    runtime: Runtime,
    session: SignedIn,
    settings: CallbackSettingsResponse,
    *,
    errors: list[tuple[str, str]] | None = None,
    status_code: int = 200,
    url_value: str | None = None,
) -> Response[str]:
    async with runtime.database.read() as connection:
        failures = await callback_deliveries.recent_failures(
            connection, session.company_id, now_ms() - FAILURES_DAYS * 86_400_000, FAILURES_SHOWN
        )
    return await render(
        runtime,
        session,
        "callbacks.html",
        "callbacks",
        status_code=status_code,
        settings=settings,
        url_value=settings.url or "" if url_value is None else url_value,
        errors=errors or [],
        failures=[
            {
                "message_id": failure.message_id,
                "channel": failure.channel,
                "attempted_at": format_ms(failure.attempted_at),
                "url": failure.url,
                "outcome": f"HTTP {failure.response_status}" if failure.response_status else failure.error,
            }
            for failure in failures
        ],
        failures_days=FAILURES_DAYS,
    )


@get("/callbacks")
async def callbacks_page(request: AnyRequest, runtime: RuntimeDep) -> Response[str] | Redirect:
    session = await session_or_none(runtime, request)
    if session is None:
        return to_sign_in()
    return await _callbacks_page(runtime, session, await read_callback_settings(runtime, session.company_id))


@post("/callbacks", status_code=200)
async def change_callbacks(request: AnyRequest, runtime: RuntimeDep) -> Response[str] | Redirect:
    """Set or clear the URL, or rotate the secret: the API's PUT /callbacks/settings. The page
    that answers shows a new secret, this once."""
    found = await changed(runtime, request)
    if found is None:
        return to_sign_in()
    session, form = found
    if field(form, "action") == "rotate":
        current = await read_callback_settings(runtime, session.company_id)
        update = CallbackSettingsUpdate(url=current.url, rotate_secret=True)
    else:
        update = CallbackSettingsUpdate(url=field(form, "url") or None, rotate_secret=False)
    try:
        settings = await update_callback_settings(runtime, session.company_id, update)
    except ProblemError as problem:
        if problem.status != 400:
            raise
        current = await read_callback_settings(runtime, session.company_id)
        return await _callbacks_page(
            runtime, session, current, errors=problem.errors, status_code=400, url_value=update.url or ""
        )
    return await _callbacks_page(runtime, session, settings)


async def _keys_page(
    runtime: Runtime,
    session: SignedIn,
    *,
    new_key: str | None = None,
    errors: list[tuple[str, str]] | None = None,
) -> Response[str]:
    async with runtime.database.read() as connection:
        keys = await CompanyRepository(connection).list_keys(session.company_id)
    return await render(
        runtime,
        session,
        "keys.html",
        "keys",
        status_code=400 if errors else 200,
        keys=[
            {
                "id": key.id,
                "prefix": key.prefix,
                "label": key.label,
                "created_at": format_ms(key.created_at),
                "revoked_at": format_ms(key.revoked_at) if key.revoked_at is not None else None,
                "this_session": key.id == session.api_key_id,
            }
            for key in reversed(keys)
        ],
        new_key=new_key,
        errors=errors or [],
    )


@get("/keys")
async def keys_page(request: AnyRequest, runtime: RuntimeDep) -> Response[str] | Redirect:
    session = await session_or_none(runtime, request)
    if session is None:
        return to_sign_in()
    return await _keys_page(runtime, session)


@post("/keys", status_code=200)
async def create_key(request: AnyRequest, runtime: RuntimeDep) -> Response[str] | Redirect:
    """A new key, shown on the page that answers and never again (the store keeps its hash)."""
    found = await changed(runtime, request)
    if found is None:
        return to_sign_in()
    session, form = found
    label = field(form, "label") or None
    if label is not None and len(label) > MAX_LABEL:
        return await _keys_page(
            runtime, session, errors=[("label", f"must be at most {MAX_LABEL} characters")]
        )
    async with runtime.database.write() as connection:
        issued = await CompanyRepository(connection).issue_key(session.company_id, now_ms(), label)
    return await _keys_page(runtime, session, new_key=issued.plain_key)


@post("/keys/{key_id:str}/revoke", status_code=303)
async def revoke_key(request: AnyRequest, runtime: RuntimeDep, key_id: PathText) -> Response[str] | Redirect:
    """Revoke one of the company's keys and end the console sessions made with it; revoking the
    session's own key signs this browser out."""
    found = await changed(runtime, request)
    if found is None:
        return to_sign_in()
    session, _form = found
    async with runtime.database.write() as connection:
        revoked = await CompanyRepository(connection).revoke_company_key(session.company_id, key_id, now_ms())
        if revoked:
            await ConsoleSessionRepository(connection).delete_for_key(key_id)
    if not revoked:
        return await _keys_page(
            runtime, session, errors=[("key", f"No active key {key_id!r} of this company.")]
        )
    if key_id == session.api_key_id:
        redirect = Redirect(path="/console/sign-in?ended=1", status_code=303)
        redirect.set_cookie(sessions.session_cookie(request, runtime.settings, None))
        return redirect
    return Redirect(path="/console/keys", status_code=303)
