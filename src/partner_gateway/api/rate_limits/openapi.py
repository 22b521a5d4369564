"""The limits in the OpenAPI document: the RateLimit headers on every partner answer, Retry-After on 429.

Litestar declares a response's headers only on the success response; the problems' entries are
ResponseSpecs without headers. So the headers are added to the generated document, once, for every
operation under the partner base path: declared in `components.headers` and referenced.
"""

from __future__ import annotations

from litestar.openapi.spec import OpenAPI, OpenAPIHeader, OpenAPIResponse, OpenAPIType, Reference, Schema

DRAFT = "draft-ietf-httpapi-ratelimit-headers-11"

HEADERS = {
    "RateLimit-Policy": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING),
        description=f"The company's limit for this kind of request ({DRAFT}): its burst `q` in "
        '`w` seconds, e.g. `"sends";q=200;w=2` for 100 sends per second with bursts of 200.',
        example='"sends";q=200;w=2',
    ),
    "RateLimit": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING),
        description=f"What is left of the limit after this request ({DRAFT}): `r` requests may "
        "follow at once; `t` seconds until the whole burst is available again (on a 429, until "
        "the next request can be admitted).",
        example='"sends";r=199;t=1',
    ),
    "Retry-After": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
        description="Whole seconds until a request of this kind can be admitted again.",
        example=1,
    ),
}

_SUCCESS = ("RateLimit-Policy", "RateLimit")
_LIMITED = ("Retry-After", "RateLimit-Policy", "RateLimit")
_COUNTED_PROBLEMS = ("400", "404", "413", "414", "422", "429")


def document_rate_limits(document: OpenAPI, base_path: str) -> None:
    """Add the headers to the partner operations' answers (2xx and their problems after the key)."""
    if document.components is None:
        return
    document.components.headers = {**(document.components.headers or {}), **HEADERS}
    for path, item in (document.paths or {}).items():
        if not path.startswith(base_path + "/"):
            continue
        for operation in (item.get, item.put, item.post, item.delete, item.patch):
            if operation is None or not operation.security:
                continue
            for status, response in (operation.responses or {}).items():
                if not isinstance(response, OpenAPIResponse):
                    continue
                if status.startswith("2") or status in _COUNTED_PROBLEMS:
                    names = _LIMITED if status == "429" else _SUCCESS
                    response.headers = {
                        **(response.headers or {}),
                        **{name: Reference(ref=f"#/components/headers/{name}") for name in names},
                    }
