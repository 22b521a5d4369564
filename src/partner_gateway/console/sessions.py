"""Console sessions: an API key exchanged once for a random token in a cookie, and CSRF checks.

* The key is read from the sign-in form, checked like a bearer key (its hash, api_keys) and
  forgotten: the browser keeps only the session token, in a cookie that is HttpOnly (no script
  reads it), SameSite=Strict (no other site's page sends it), Path=/console, and Secure when the
  sign-in came over TLS (or `PARTNER_GATEWAY_CONSOLE_COOKIE_SECURE` says so).
* The store keeps the token's SHA-256, not the token (store/repositories/console_sessions.py), so
  every API process on the store knows every session. A session ends when it is idle for
  `console_session_idle_seconds`, at `console_session_max_seconds` after the sign-in, at sign-out,
  or when its API key is revoked (each look-up joins api_keys).
* Every change (each POST) carries the session's CSRF token, in the form's field or the
  `X-CSRF-Token` header, compared in constant time, and comes from our own origin (`Origin`, or
  `Referer` when a browser sends no Origin). Either check failing is a 403.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.datastructures import Cookie

from partner_gateway.api.problems import ProblemError
from partner_gateway.config import Settings
from partner_gateway.domain.ids import hash_token
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.companies import CompanyRepository, hash_api_key
from partner_gateway.store.repositories.console_sessions import ConsoleSession, ConsoleSessionRepository

COOKIE_NAME = "pgw_console"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_TOKEN_LENGTH = 100
MAX_KEY_LENGTH = 200
TOUCH_EVERY_MS = 30_000
"""last_seen_at is written at most this often per session: a page view costs no write, and the
idle expiry is exact to within this."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The request's session: whose it is, and the token its changes must carry."""

    token_hash: str
    company_id: str
    api_key_id: str
    csrf_token: str


async def sign_in(runtime: Runtime, api_key: str) -> tuple[str, SignedIn] | None:
    """A new session for an active key (the token for the cookie, and the session), or None."""
    key = api_key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    now = now_ms()
    settings = runtime.settings
    idle_ms = int(settings.console_session_idle_seconds * 1000)
    async with runtime.database.write() as connection:
        found = await CompanyRepository(connection).active_key_for_hash(hash_api_key(key))
        if found is None:
            return None
        key_id, company_id = found
        sessions = ConsoleSessionRepository(connection)
        await sessions.purge(now, idle_ms)  # ended sessions go at the next sign-in: no sweeper needed
        token = secrets.token_urlsafe(32)
        session = ConsoleSession(
            token_hash=hash_token(token),
            company_id=company_id,
            api_key_id=key_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + int(settings.console_session_max_seconds * 1000),
            last_seen_at=now,
        )
        await sessions.create(session)
    return token, SignedIn(session.token_hash, company_id, key_id, session.csrf_token)


async def current(runtime: Runtime, request: Request[Any, Any, Any]) -> SignedIn | None:
    """The request's live session, or None (no cookie, unknown, expired, or its key revoked)."""
    token = request.cookies.get(COOKIE_NAME)
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    token_hash = hash_token(token)
    async with runtime.database.read() as connection:
        session = await ConsoleSessionRepository(connection).find(token_hash)
    if session is None:
        return None
    now = now_ms()
    idle_ms = int(runtime.settings.console_session_idle_seconds * 1000)
    if now >= session.expires_at or now - session.last_seen_at >= idle_ms:
        async with runtime.database.write() as connection:
            await ConsoleSessionRepository(connection).delete(token_hash)
        return None
    if now - session.last_seen_at >= TOUCH_EVERY_MS:
        async with runtime.database.write() as connection:
            await ConsoleSessionRepository(connection).touch(token_hash, now)
    return SignedIn(token_hash, session.company_id, session.api_key_id, session.csrf_token)


async def sign_out(runtime: Runtime, session: SignedIn) -> None:
    async with runtime.database.write() as connection:
        await ConsoleSessionRepository(connection).delete(session.token_hash)


def session_cookie(request: Request[Any, Any, Any], settings: Settings, token: str | None) -> Cookie:
    """The cookie that carries `token`; with None, the one that clears it."""
    secure = settings.console_cookie_secure
    if secure is None:
        secure = request.url.scheme == "https"
    return Cookie(
        key=COOKIE_NAME,
        value=token or "",
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
        max_age=int(settings.console_session_max_seconds) if token else 0,
    )


def forbidden(detail: str) -> ProblemError:
    return ProblemError(403, "forbidden", detail)


def check_origin(request: Request[Any, Any, Any], settings: Settings) -> None:
    """A change must come from a page of ours: its Origin (or, without one, its Referer) is this
    request's own origin or the configured public base URL's. Neither header: refused."""
    allowed = {f"{request.url.scheme}://{request.headers.get('host', '')}".lower()}
    if settings.public_base_url:
        base = urlsplit(settings.public_base_url)
        allowed.add(f"{base.scheme}://{base.netloc}".lower())
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        referer = request.headers.get("referer")
        if not referer:
            raise forbidden("The request came from no page of this console (no Origin or Referer).")
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin.lower() not in allowed:
        raise forbidden("The request came from another site's page.")


def check_csrf(
    request: Request[Any, Any, Any], settings: Settings, session: SignedIn, submitted: str | None
) -> None:
    """The origin check, then the session's token in the form (or the X-CSRF-Token header)."""
    check_origin(request, settings)
    token = submitted or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
        raise forbidden(
            "The form is out of date or was not made by this console: reload the page and try again."
        )
