"""Rate limits per company on every partner route (SPEC §2; docs/operations.md, "Rate limits").

Which requests count: the three `POST /{channel}/messages` count as sends; every other request
under /partner-gateway/v1 that carries a valid key (status, batch, query, history, events,
callback settings) counts as a read. A request without a valid key is refused (401) before it is
counted; /health, /ready, the OpenAPI document and the providers' webhooks are not partner traffic.

A counted answer carries `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11);
a refused one is a 429 problem with `Retry-After` too, and nothing of it is stored or sent.

The front (api/front.py) calls `RateLimiter.admit` itself; Litestar's routes get it through
`limited_company` (the partner router's `company_id` dependency) and the headers through the
`add_headers` hook (routes.py). Which traffic a route counts as is its handler's `opt[TRAFFIC_OPT]`.
"""
