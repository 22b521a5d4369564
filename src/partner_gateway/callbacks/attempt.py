"""One callback attempt over HTTP: the URL checked again, the request sent to a checked address.

Every attempt runs SPEC §5's URL rules again (`CallbackUrlChecker.check`, which resolves the
name) and connects to an address it checked, never to whatever the name resolves to by then:
the request's URL carries the address, its `Host` header the name, and for https the TLS
server name (SNI) and the certificate check are the name's (httpcore's `sni_hostname`). So a
DNS answer that changes between the check and the connection cannot point the request at a
private address. Redirects are not followed (an answer is an answer: a 3xx is a failure), the
proxies of the environment are not used, the whole attempt is bounded by the timeout, and at
most `MAX_ANSWER_BYTES` of the partner's answer are read (the rest is dropped with the
connection).

The outcome is an `AttemptResult`: the status the partner answered, or why there is none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from partner_gateway.callbacks.signing import SIGNATURE_HEADER, sign
from partner_gateway.callbacks.urls import CallbackUrlChecker, Destination, RefusedUrl

EVENT_ID_HEADER = "X-Partner-Gateway-Event-Id"
USER_AGENT = "partner-gateway-callbacks/1"
MAX_ANSWER_BYTES = 16_384
"""Read of a partner's answer at most: the status is what counts; a larger body is not read."""


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status: int | None
    """The partner's HTTP status; None when there was no answer (see `error`)."""
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def new_client(concurrency: int, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client for one endpoint: its own pool (a connection verified for one name is never
    reused for another endpoint's), no redirects, no proxies from the environment."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        transport=transport,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=None,  # noqa: S113 - the attempt as a whole is bounded (asyncio.timeout), not each phase
    )


def host_header(destination: Destination) -> str:
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    default = 443 if destination.scheme == "https" else 80
    return host if destination.port == default else f"{host}:{destination.port}"


async def attempt(
    client: httpx.AsyncClient,
    urls: CallbackUrlChecker,
    url: str,
    body: bytes,
    event_id: str,
    secrets: Sequence[str],
    *,
    timeout: float,  # noqa: ASYNC109 - the attempt's bound, applied with asyncio.timeout below
) -> AttemptResult:
    """POST `body` to `url`, signed with `secrets`, within `timeout` seconds."""
    started = time.monotonic()

    def result(status: int | None, error: str | None) -> AttemptResult:
        return AttemptResult(status, error, round((time.monotonic() - started) * 1000))

    try:
        async with asyncio.timeout(timeout):
            try:
                checked = await urls.check(url)
            except RefusedUrl as refused:
                return result(None, f"URL refused: {refused.reason}")
            destination = checked.destination
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Host": host_header(destination),
                EVENT_ID_HEADER: event_id,
                SIGNATURE_HEADER: sign(secrets, int(time.time()), body),
            }
            extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
            target = httpx.URL(url)
            error = "no address to connect to"
            for address in checked.addresses:
                try:
                    return result(
                        await _post(client, target.copy_with(host=str(address)), body, headers, extensions),
                        None,
                    )
                except httpx.ConnectError as refused:  # the next checked address, if any
                    error = f"connection failed ({address}): {refused or type(refused).__name__}"
                except httpx.TimeoutException:
                    return result(None, f"no answer within {timeout:g} s")
                except httpx.HTTPError as failed:
                    return result(None, f"{type(failed).__name__}: {failed}"[:300])
            return result(None, error)
    except TimeoutError:
        return result(None, f"no answer within {timeout:g} s")


async def _post(
    client: httpx.AsyncClient,
    target: httpx.URL,
    body: bytes,
    headers: dict[str, str],
    extensions: dict[str, str],
) -> int:
    request = client.build_request("POST", target, content=body, headers=headers, extensions=extensions)
    response = await client.send(request, stream=True)
    try:
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read >= MAX_ANSWER_BYTES:
                break
    finally:
        await response.aclose()
    return response.status_code
