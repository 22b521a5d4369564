"""What every console handler shares: the session or the way to sign-in, a page's context, forms."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response
from litestar.datastructures import FormMultiDict
from litestar.params import PathParameter
from litestar.response import Redirect

from partner_gateway.api.problems import unauthorized
from partner_gateway.console import sessions
from partner_gateway.console.render import page
from partner_gateway.console.sessions import SignedIn
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.companies import CompanyRepository

SIGN_IN_PATH = "/console/sign-in"
MAX_FIELD_LENGTH = 4096

AnyRequest = Request[Any, Any, Any]
PathText = Annotated[str, PathParameter()]


def to_sign_in() -> Redirect:
    return Redirect(path=SIGN_IN_PATH, status_code=303)


async def session_or_none(runtime: Runtime, request: AnyRequest) -> SignedIn | None:
    return await sessions.current(runtime, request)


async def session_for_json(runtime: Runtime, request: AnyRequest) -> SignedIn:
    """A JSON endpoint's session, or the 401 problem (scripts get no redirect to follow)."""
    session = await sessions.current(runtime, request)
    if session is None:
        raise unauthorized("Sign in to the console first.")
    return session


async def form_of(request: AnyRequest) -> FormMultiDict:
    return await request.form()


def field(form: FormMultiDict, name: str) -> str:
    """A form field's text, trimmed; '' when absent (forms send empty fields as '')."""
    value = form.get(name)
    return value.strip()[:MAX_FIELD_LENGTH] if isinstance(value, str) else ""


async def changed(runtime: Runtime, request: AnyRequest) -> tuple[SignedIn, FormMultiDict] | None:
    """A change's session and form once the CSRF checks pass (403 otherwise), or None when the
    request has no session (the caller redirects to sign-in)."""
    session = await sessions.current(runtime, request)
    if session is None:
        return None
    form = await request.form()
    submitted = form.get(sessions.CSRF_FIELD)
    sessions.check_csrf(request, runtime.settings, session, submitted if isinstance(submitted, str) else None)
    return session, form


async def render(
    runtime: Runtime,
    session: SignedIn,
    template: str,
    active: str,
    status_code: int = 200,
    **context: Any,
) -> Response[str]:
    """A signed-in page: the company's name, the navigation, the form token."""
    async with runtime.database.read() as connection:
        company = await CompanyRepository(connection).get(session.company_id)
    return page(
        template,
        {
            "company_name": company.name if company else session.company_id,
            "company_id": session.company_id,
            "csrf_token": session.csrf_token,
            "active": active,
            **context,
        },
        status_code=status_code,
    )
