"""Pages: Jinja2 templates from this package, autoescaped, answered with the console's headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Response
from litestar.datastructures import Cookie

from partner_gateway.domain.statuses import FINAL_STATUSES, DeliveryStatus

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

SECURITY_HEADERS = {
    # Scripts and styles only from the console's own files: an injected tag runs nothing.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages hold the company's data and one-time secrets
}

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,  # a misspelt name fails the page's test, not silently blank
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.globals.update(
    statuses=[status.value for status in DeliveryStatus],
    final_statuses=sorted(status.value for status in FINAL_STATUSES),
)


def page(
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    cookies: list[Cookie] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    html = _environment.get_template(template).render(**context)
    return Response(
        content=html,
        status_code=status_code,
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, **(headers or {})},
        cookies=cookies,
    )
