"""The console's routes under /console, mounted beside (never inside) the partner API's router:
none of its guards, rate-limit dependency or OpenAPI operations apply here, and nothing here is
in the OpenAPI document."""

from __future__ import annotations

from litestar import Router
from litestar.static_files import create_static_files_router

from partner_gateway.console import messages, settings_pages, sign_in, stats_page
from partner_gateway.console.render import STATIC

PATH = "/console"


def console_router() -> Router:
    return Router(
        path=PATH,
        route_handlers=[
            sign_in.home,
            sign_in.sign_in_form,
            sign_in.sign_in,
            sign_in.sign_out,
            messages.message_log,
            messages.message_page,
            messages.message_json,
            messages.send_form,
            messages.send,
            settings_pages.callbacks_page,
            settings_pages.change_callbacks,
            settings_pages.keys_page,
            settings_pages.create_key,
            settings_pages.revoke_key,
            stats_page.stats,
            stats_page.chart_js,
            create_static_files_router(
                path="/static", directories=[STATIC], include_in_schema=False, name="console-static"
            ),
        ],
        include_in_schema=False,
    )
