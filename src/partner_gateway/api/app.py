"""The ASGI application: routes under /partner-gateway/v1, problem details, OpenAPI 3.1."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, OpenAPI, Reference, Schema, SecurityScheme

from partner_gateway.api.allow import options_for
from partner_gateway.api.callbacks import (
    SETTINGS_PATH,
    CallbackSettingsController,
    MessageCallbacksController,
)
from partner_gateway.api.docs_page import docs_assets_router, docs_render_plugin
from partner_gateway.api.front import PartnerApi
from partner_gateway.api.history import HistoryController
from partner_gateway.api.inbound import InboundController
from partner_gateway.api.openapi_contract import complete_document
from partner_gateway.api.operations import OPERATIONS
from partner_gateway.api.opt_outs import ENTRY_PATH, OptOutsController
from partner_gateway.api.problems import handle_exception
from partner_gateway.api.rate_limits import routes as rate_limits
from partner_gateway.api.rate_limits.openapi import document_rate_limits
from partner_gateway.api.sending import send_route_handlers
from partner_gateway.api.stats import StatsController
from partner_gateway.api.status import StatusController
from partner_gateway.api.strict_input import StrictRequest, declared_query_only, partner_bounds
from partner_gateway.api.webhooks import webhook_handlers
from partner_gateway.channels.base import WebhookRoute
from partner_gateway.channels.registry import CHANNELS, ChannelRegistry
from partner_gateway.config import Settings
from partner_gateway.console.router import console_router
from partner_gateway.console.throttle import SignInThrottle
from partner_gateway.runtime import Runtime

BASE_PATH = "/partner-gateway/v1"
logger = logging.getLogger(__name__)


@get(
    f"{BASE_PATH}/openapi.json", include_in_schema=False, sync_to_thread=False, media_type="application/json"
)
def openapi_document(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document where SPEC §1 puts it; the interactive docs are under /docs."""
    return request.app.openapi_schema.to_schema()


def create_app(
    settings: Settings,
    runtime: Runtime | None = None,
    webhooks: Sequence[WebhookRoute] = (),
    channels: ChannelRegistry | None = None,
) -> PartnerApi:
    """Build the app; with no runtime given, one is started (and closed) by the app's lifespan.
    `channels`: the channels served (default: the runtime's, or the gateway's three).

    The single-status look-up is served in front of the framework (api/front.py); the rest,
    the lifespan included, by Litestar.
    """
    holder: dict[str, Runtime] = {} if runtime is None else {"runtime": runtime}
    if channels is None:
        channels = runtime.channels if runtime is not None else CHANNELS

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        if runtime is not None:
            yield
            return
        started = await Runtime.start(settings, channels)
        holder["runtime"] = started
        try:
            yield
        finally:
            await started.close()

    def provide_runtime() -> Runtime:
        return holder["runtime"]

    partner_api = Router(
        path=BASE_PATH,
        route_handlers=[
            # Paths of several handlers: their Allow lists every method (api/allow.py). First, so
            # that Litestar makes no automatic OPTIONS answer for them.
            options_for(SETTINGS_PATH, ["GET", "PUT"]),
            options_for(ENTRY_PATH, ["GET", "PUT", "DELETE"]),
            *send_route_handlers(channels),
            StatusController,
            HistoryController,
            StatsController,
            CallbackSettingsController,
            MessageCallbacksController,
            InboundController,
            OptOutsController,
        ],
        dependencies={"company_id": Provide(rate_limits.limited_company)},
        security=[{"bearerAuth": []}],
        guards=[declared_query_only],  # undeclared or repeated query parameters: 400 (strict_input.py)
    )
    framework = Litestar(
        route_handlers=[
            partner_api,
            openapi_document,
            docs_assets_router(BASE_PATH),
            *OPERATIONS,
            *webhook_handlers(webhooks),
            console_router(),  # the partner console (console/): its own router, out of the schema
        ],
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        exception_handlers={Exception: handle_exception},
        before_send=[rate_limits.add_headers],
        state=State(
            {
                "channels": channels,
                "json_bounds": partner_bounds(settings),
                "console_sign_ins": SignInThrottle(settings.console_signin_failures),
            }
        ),
        request_class=StrictRequest,  # JSON bodies: media type and shape checked before decoding
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Partner Gateway API",
            version="1.0.0",
            description="Send SMS, RCS and WhatsApp messages and follow what became of each one.",
            # Litestar answers unknown paths under its docs router itself (in HTML), so the docs
            # get a router of their own rather than the API's base path.
            path=f"{BASE_PATH}/docs",
            render_plugins=[docs_render_plugin(BASE_PATH)],  # served offline (api/docs_page.py)
            components=Components(
                security_schemes={
                    "bearerAuth": SecurityScheme(
                        type="http", scheme="bearer", description="Your company's API key"
                    )
                }
            ),
        ),
        logging_config=None,
        debug=False,
    )
    _name_channels(framework.openapi_schema, channels.names)
    document_rate_limits(framework.openapi_schema, BASE_PATH)
    complete_document(framework.openapi_schema, channels, settings.max_query_ids)  # api/openapi_contract.py
    return PartnerApi(
        framework,
        provide_runtime,
        BASE_PATH,
        settings.max_body_bytes,
        channels,
        partner_bounds(settings),
        metrics=settings.metrics_enabled,
        access_log=settings.access_log,
    )


def _name_channels(document: OpenAPI, names: Sequence[str]) -> None:
    """Every `channel` in the document (parameters and fields) lists exactly the channels served:
    the schemas are declared once, the registry says which channels there are."""
    schemas = document.components.schemas if document.components else {}
    enums: list[Schema] = []
    for schema in schemas.values():
        channel = (schema.properties or {}).get("channel")
        if isinstance(channel, Reference):
            channel = schemas.get(channel.ref.rsplit("/", 1)[-1])
        if isinstance(channel, Schema):
            enums.append(channel)
    for path in (document.paths or {}).values():
        for operation in (path.get, path.post):
            for parameter in (operation.parameters or []) if operation else []:
                if getattr(parameter, "name", None) == "channel" and isinstance(parameter.schema, Schema):  # type: ignore[union-attr]
                    enums.append(parameter.schema)  # type: ignore[union-attr]
    for schema in enums:
        schema.enum = list(names)
