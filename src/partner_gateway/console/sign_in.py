"""Sign in with an API key (exchanged for a session), sign out."""

from __future__ import annotations

import asyncio

from litestar import Response, get, post
from litestar.response import Redirect

from partner_gateway.api.deps import RuntimeDep
from partner_gateway.console import sessions
from partner_gateway.console.common import AnyRequest, changed, field, form_of, to_sign_in
from partner_gateway.console.render import page
from partner_gateway.console.throttle import FAILURE_DELAY_SECONDS, SignInThrottle

HOME = "/console/messages"


def _throttle(request: AnyRequest) -> SignInThrottle:
    throttle: SignInThrottle = request.app.state["console_sign_ins"]
    return throttle


@get("/", sync_to_thread=False)
def home() -> Redirect:
    return Redirect(path=HOME, status_code=303)


@get("/sign-in")
async def sign_in_form(request: AnyRequest, runtime: RuntimeDep) -> Response[str] | Redirect:
    if await sessions.current(runtime, request) is not None:
        return Redirect(path=HOME, status_code=303)
    ended = request.query_params.get("ended")
    return page("sign_in.html", {"error": None, "ended": ended == "1"})


@post("/sign-in", status_code=303)
async def sign_in(request: AnyRequest, runtime: RuntimeDep) -> Response[str] | Redirect:
    # No session yet, so no form token: the origin check (and SameSite) keeps another site from
    # signing a browser in to an account of its choosing.
    sessions.check_origin(request, runtime.settings)
    address = request.client.host if request.client else "unknown"
    throttle = _throttle(request)
    wait = throttle.retry_after(address)
    if wait is not None:
        return page(
            "sign_in.html",
            {
                "error": f"Too many failed sign-ins from your address: try again in {wait} seconds.",
                "ended": False,
            },
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    form = await form_of(request)
    made = await sessions.sign_in(runtime, field(form, "api_key"))
    if made is None:
        throttle.failed(address)
        await asyncio.sleep(FAILURE_DELAY_SECONDS)  # slows a guesser; costs the loop nothing
        return page(
            "sign_in.html", {"error": "That API key is unknown or revoked.", "ended": False}, status_code=401
        )
    token, _session = made
    redirect = Redirect(path=HOME, status_code=303)
    redirect.set_cookie(sessions.session_cookie(request, runtime.settings, token))
    return redirect


@post("/sign-out", status_code=303)
async def sign_out(request: AnyRequest, runtime: RuntimeDep) -> Redirect:
    found = await changed(runtime, request)
    if found is not None:
        await sessions.sign_out(runtime, found[0])
    redirect = to_sign_in()
    redirect.set_cookie(sessions.session_cookie(request, runtime.settings, None))
    return redirect
