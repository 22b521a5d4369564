"""The interactive API docs, served by the gateway itself: Swagger UI from a pinned package, no CDN.

Litestar's render plugins load Swagger UI (and Scalar, unpinned) from a CDN: offline, or behind a
strict proxy, the docs page is blank. The assets come instead from the `swagger-ui-py` package
(pinned in pyproject.toml; it vendors Swagger UI 5, which reads OpenAPI 3.1), served from
`{base}/docs-assets/`, and the page at `{base}/docs` loads only those.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

SWAGGER_UI_ASSETS: Final = Path(str(files("swagger_ui") / "static"))
"""Swagger UI's files as the package installs them."""

_LOADED: Final = (
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "favicon-32x32.png",
    "oauth2-redirect.html",
)


def docs_render_plugin(base_path: str) -> SwaggerRenderPlugin:
    """Swagger UI at the docs router's root, every asset from this gateway."""
    assets = f"{base_path}/docs-assets"
    return SwaggerRenderPlugin(
        path="/",
        js_url=f"{assets}/swagger-ui-bundle.js",
        css_url=f"{assets}/swagger-ui.css",
        standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
    )


def docs_assets_router(base_path: str) -> Router:
    """The package's folder of Swagger UI files, which the docs page loads from."""
    missing = [name for name in _LOADED if not (SWAGGER_UI_ASSETS / name).is_file()]
    if missing:  # a broken install: say so at start-up, not with a blank page
        raise RuntimeError(f"swagger-ui-py is installed without {', '.join(missing)} in {SWAGGER_UI_ASSETS}")
    return create_static_files_router(
        path=f"{base_path}/docs-assets",
        directories=[SWAGGER_UI_ASSETS],
        include_in_schema=False,
        name="docs-assets",
    )
