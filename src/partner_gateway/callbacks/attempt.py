"""One callback attempt over HTTP: the URL checked again, the request sent to a checked address.

Every attempt runs SPEC §5's URL rules again (`CallbackUrlChecker.check`, which resolves the
name) and connects to an address it checked, never to whatever the name resolves to by then:
the request's URL carries the address, its `Host` header the name, and for https the TLS
server name (SNI) and the certificate check are the name's (aiohttp's `server_hostname`). So a
DNS answer that changes between the check and the connection cannot point the request at a
private address. Redirects are not followed (an answer is an answer: a 3xx is a failure), the
proxies of the environment are not used, the whole attempt is bounded by the timeout, and at
most `MAX_ANSWER_BYTES` of the partner's answer are read (the rest is dropped with the
connection).

The outcome is an `AttemptResult`: the status the partner answered, or why there is none.

The client is aiohttp, not httpx as elsewhere: measured side by side on loopback (4,000 POSTs
of a callback's size, 8 at once, to bench/sink.py), httpx spent 2.0-2.3 ms of CPU per request
and aiohttp 0.15-0.22 ms (docs/performance.md), and a callback's CPU is taken from the
embedded gateway's one core: every status change of a message with a target is one.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from yarl import URL

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
    url_refused: bool = False
    """The URL failed SPEC §5's rules at this attempt (nothing was sent)."""

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def new_client(concurrency: int, trust: ssl.SSLContext | None = None) -> aiohttp.ClientSession:
    """A client for one endpoint: its own pool (a connection verified for one name is never
    reused for another endpoint's), no redirects, no proxies from the environment. Made inside
    the running loop. `trust`: whom https certificates must chain to (the system's CAs)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ssl=trust or True),
        trust_env=False,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None),  # the attempt as a whole is bounded (asyncio.timeout)
    )


def host_header(destination: Destination) -> str:
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    default = 443 if destination.scheme == "https" else 80
    return host if destination.port == default else f"{host}:{destination.port}"


async def attempt(
    client: aiohttp.ClientSession,
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

    def result(status: int | None, error: str | None, *, url_refused: bool = False) -> AttemptResult:
        return AttemptResult(status, error, round((time.monotonic() - started) * 1000), url_refused)

    try:
        async with asyncio.timeout(timeout):
            try:
                checked = await urls.check(url)
            except RefusedUrl as refused:
                return result(None, f"URL refused: {refused.reason}", url_refused=True)
            destination = checked.destination
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Host": host_header(destination),
                EVENT_ID_HEADER: event_id,
                SIGNATURE_HEADER: sign(secrets, int(time.time()), body),
            }
            server_hostname = destination.host if destination.scheme == "https" else None
            target = URL(url, encoded=True)
            error = "no address to connect to"
            for address in checked.addresses:
                try:
                    return result(
                        await _post(client, target.with_host(str(address)), body, headers, server_hostname),
                        None,
                    )
                except aiohttp.ClientConnectorError as refused:  # the next checked address, if any
                    error = f"connection failed ({address}): {refused.os_error or type(refused).__name__}"
                except aiohttp.ClientError as failed:
                    return result(None, f"{type(failed).__name__}: {failed}"[:300])
            return result(None, error)
    except TimeoutError:
        return result(None, f"no answer within {timeout:g} s")


async def _post(
    client: aiohttp.ClientSession,
    target: URL,
    body: bytes,
    headers: dict[str, str],
    server_hostname: str | None,
) -> int:
    async with client.post(
        target, data=body, headers=headers, allow_redirects=False, server_hostname=server_hostname
    ) as response:
        read = 0
        while read < MAX_ANSWER_BYTES:
            chunk = await response.content.readany()
            if not chunk:
                break
            read += len(chunk)
        # Leaving with part of a larger answer unread closes the connection instead of reusing it.
        return response.status
