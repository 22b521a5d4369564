"""The ASGI application: routes under /partner-gateway/v1, problem details, OpenAPI 3.1."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Router, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from partner_gateway.api.auth import authenticated_company
from partner_gateway.api.front import PartnerApi
from partner_gateway.api.history import HistoryController
from partner_gateway.api.problems import handle_exception
from partner_gateway.api.sending import SendController
from partner_gateway.api.status import StatusController
from partner_gateway.api.webhooks import webhook_handlers
from partner_gateway.channels.base import WebhookRoute
from partner_gateway.config import Settings
from partner_gateway.runtime import Runtime

BASE_PATH = "/partner-gateway/v1"
logger = logging.getLogger(__name__)


@get(
    f"{BASE_PATH}/openapi.json", include_in_schema=False, sync_to_thread=False, media_type="application/json"
)
def openapi_document(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document where SPEC §1 puts it; the interactive docs are under /docs."""
    return request.app.openapi_schema.to_schema()


@get("/health", include_in_schema=False, sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness: the process answers. Also the cheapest endpoint, the benchmarks' ceiling."""
    return {"status": "ok"}


def create_app(
    settings: Settings, runtime: Runtime | None = None, webhooks: Sequence[WebhookRoute] = ()
) -> PartnerApi:
    """Build the app; with no runtime given, one is started (and closed) by the app's lifespan.

    The single-status look-up is served in front of the framework (api/front.py); the rest,
    the lifespan included, by Litestar.
    """
    holder: dict[str, Runtime] = {} if runtime is None else {"runtime": runtime}

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        if runtime is not None:
            yield
            return
        started = await Runtime.start(settings)
        holder["runtime"] = started
        try:
            yield
        finally:
            await started.close()

    def provide_runtime() -> Runtime:
        return holder["runtime"]

    partner_api = Router(
        path=BASE_PATH,
        route_handlers=[SendController, StatusController, HistoryController],
        dependencies={"company_id": Provide(authenticated_company)},
        security=[{"bearerAuth": []}],
    )
    framework = Litestar(
        route_handlers=[partner_api, openapi_document, health, *webhook_handlers(webhooks)],
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        exception_handlers={Exception: handle_exception},
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Partner Gateway API",
            version="1.0.0",
            description="Send SMS, RCS and WhatsApp messages and follow what became of each one.",
            # Litestar answers unknown paths under its docs router itself (in HTML), so the docs
            # get a router of their own rather than the API's base path.
            path=f"{BASE_PATH}/docs",
            render_plugins=[ScalarRenderPlugin(path="/"), SwaggerRenderPlugin(path="/swagger")],
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
    return PartnerApi(framework, provide_runtime, BASE_PATH, settings.max_body_bytes)
