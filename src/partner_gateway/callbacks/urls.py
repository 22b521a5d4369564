"""Callback URL safety: which URLs the gateway may push to, and the addresses it may connect to.

SPEC §5: an absolute `http` or `https` URL whose host is not, and does not resolve to, a
loopback, private, link-local, multicast or otherwise non-public address (unless
PARTNER_GATEWAY_CALLBACK_ALLOW_PRIVATE_NETWORKS). A URL is refused with the reason why:

    RefusedUrl
      syntax      not absolute http(s), userinfo, a bad port, characters no host name has
      address     a literal address that is not public, in any spelling: `127.0.0.1`,
                  `2130706433`, `0x7f.1`, `0177.0.0.1`, `[::ffff:127.0.0.1]`, `[::1]`
      resolution  the name does not resolve, or one of its addresses is not public

Literal IPv4 is read the way browsers and URL libraries read a host (the WHATWG URL standard):
a host whose last label is a number is an address, each label decimal, octal (`0` prefix) or
hex (`0x`), the last one filling the remaining bytes. Reading it only as dotted quads would let
`http://2130706433/` reach loopback. A name goes through IDNA first, so `１２７。０。０。１`
is checked as the `127.0.0.1` it becomes.

`CallbackUrlChecker.check` answers the addresses it checked, so a sender connects to exactly
those (a DNS answer that changes between check and connect cannot redirect it), and keeps each
host's answer a few seconds, so a burst of sends naming one host resolves it once.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import urlsplit

URL_MAX_LENGTH = 2048
RESOLUTION_TTL_SECONDS = 10.0
RESOLUTION_CACHE_HOSTS = 1024
RESOLUTION_TIMEOUT_SECONDS = 2.0
"""A name that takes longer is refused (and the answer kept like any other): a send must not
wait on a partner's slow DNS."""

IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str], Awaitable[list[str]]]
"""A host name's addresses, as text (the process edge: `system_resolver`, or a test's own)."""

_NAT64 = IPv6Address("64:ff9b::")
_HOST_NAME = re.compile(r"[a-z0-9_.-]+")
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")


class RefusedUrl(ValueError):
    """A callback URL the gateway will not push to; the message says why, for the partner."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Destination:
    """A callback URL read as the gateway reads it."""

    url: str
    scheme: str
    host: str
    """The ASCII host name (after IDNA), or a literal address's canonical text."""
    port: int
    address: IPAddress | None
    """The host as an address, when the URL names one."""


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    """A URL allowed now, and the addresses it may be reached at (every one checked)."""

    destination: Destination
    addresses: tuple[IPAddress, ...]


def parse(url: str, *, allow_private: bool = False) -> Destination:
    """The URL's destination, or RefusedUrl; a literal address is checked, a name is not
    resolved (see `CallbackUrlChecker.check`)."""
    if len(url) > URL_MAX_LENGTH:
        raise RefusedUrl(f"must be at most {URL_MAX_LENGTH} characters")
    if _FORBIDDEN_CHARACTERS.search(url):
        raise RefusedUrl("must not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedUrl(f"is not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise RefusedUrl("must be an absolute http or https URL")
    if "@" in parts.netloc:
        raise RefusedUrl("must not contain a user name or password")
    if port == 0:
        raise RefusedUrl("must not name port 0")
    host = parts.hostname
    if not host:
        raise RefusedUrl("must name a host")
    port = port or (443 if scheme == "https" else 80)
    if "[" in parts.netloc:
        try:
            address: IPAddress | None = IPv6Address(host)
        except ValueError:
            raise RefusedUrl("has a bracketed host that is not an IPv6 address") from None
    else:
        host = _ascii_host(host)
        address = ipv4_literal(host)
    if address is not None:
        host = str(address)
        if not allow_private:
            reason = non_public_reason(address)
            if reason is not None:
                raise RefusedUrl(f"must not point at a {reason} address ({address})")
    return Destination(url=url, scheme=scheme, host=host, port=port, address=address)


def _ascii_host(host: str) -> str:
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise RefusedUrl("has a host name that is not a valid international domain name") from None
    host = host.lower()
    if not _HOST_NAME.fullmatch(host) or ".." in host or host.startswith("."):
        raise RefusedUrl("has a host name with characters a host name cannot have")
    return host


def ipv4_literal(host: str) -> IPv4Address | None:
    """The address an ASCII host spells (WHATWG URL IPv4 parser), None for a name; RefusedUrl
    for a host that ends in a number but is no valid address (`1.2.3.4.5`, `1.x.3`)."""
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # a trailing dot: "127.0.0.1." is the same address
    if not _ends_in_number(labels[-1]):
        return None
    numbers = [_ipv4_number(label) for label in labels]
    if len(numbers) > 4 or any(number > 255 for number in numbers[:-1]):
        raise RefusedUrl("has a host that is not a valid IPv4 address")
    if numbers[-1] >= 256 ** (5 - len(numbers)):
        raise RefusedUrl("has a host that is not a valid IPv4 address")
    value = numbers[-1]
    for position, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - position))
    return IPv4Address(value)


def _ends_in_number(label: str) -> bool:
    if label.isdigit():
        return True
    return label[:2] in ("0x", "0X") and all(c in "0123456789abcdefABCDEF" for c in label[2:])


def _ipv4_number(label: str) -> int:
    try:
        if label[:2] in ("0x", "0X"):
            return int(label[2:], 16) if label[2:] else 0
        if len(label) > 1 and label.startswith("0"):
            return int(label[1:], 8)
        if label.isdigit():
            return int(label)
    except ValueError:
        pass
    raise RefusedUrl("has a host that is not a valid IPv4 address")


def non_public_reason(address: IPAddress) -> str | None:
    """Why an address is not one the gateway pushes to ("loopback", "private", ...), or None
    when it is public. An IPv6 address carrying an IPv4 one (mapped, 6to4, NAT64, Teredo) is
    judged by that IPv4 address too."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return non_public_reason(address.ipv4_mapped)
        if address.scope_id:
            return "scoped"
        embedded = [address.sixtofour, _nat64_embedded(address)]
        if address.teredo is not None:
            embedded.extend(address.teredo)
        for inner in embedded:
            if inner is not None and (reason := non_public_reason(inner)) is not None:
                return reason
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"
    return None


def _nat64_embedded(address: IPv6Address) -> IPv4Address | None:
    if int(address) >> 32 == int(_NAT64) >> 32:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


async def system_resolver(host: str) -> list[str]:
    """The host's addresses from the system resolver, on the loop's executor."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


_Answer = tuple[IPAddress, ...] | RefusedUrl


class CallbackUrlChecker:
    """SPEC §5's URL rules, resolution included, for one process; `allow_private` lifts the
    address rules (local development, tests)."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        resolve: Resolver = system_resolver,
        ttl_seconds: float = RESOLUTION_TTL_SECONDS,
        timeout_seconds: float = RESOLUTION_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allow_private = allow_private
        self._resolve = resolve
        self._ttl = ttl_seconds
        self._clock = clock
        self._answers: dict[str, tuple[float, _Answer]] = {}
        self._timeout = timeout_seconds
        self._inflight: dict[str, asyncio.Future[_Answer]] = {}
        self._parsed: dict[str, Destination | RefusedUrl] = {}

    def parse(self, url: str) -> Destination:
        """The URL's destination without resolving it; RefusedUrl when its form or a literal
        address is not allowed. Kept per URL: the answer depends on the URL's text alone (and
        `allow_private`), and a sender parses the same few URLs at every attempt."""
        parsed = self._parsed.get(url)
        if parsed is None:
            try:
                parsed = parse(url, allow_private=self.allow_private)
            except RefusedUrl as refused:
                parsed = refused
            if len(self._parsed) >= RESOLUTION_CACHE_HOSTS:
                self._parsed.clear()
            self._parsed[url] = parsed
        if isinstance(parsed, RefusedUrl):
            raise RefusedUrl(parsed.reason)
        return parsed

    async def check(self, url: str) -> CheckedUrl:
        """The URL and every address it may be reached at now; RefusedUrl when not allowed."""
        destination = self.parse(url)
        if destination.address is not None:
            return CheckedUrl(destination, (destination.address,))
        answer = await self._addresses(destination.host)
        if isinstance(answer, RefusedUrl):
            raise answer
        return CheckedUrl(destination, answer)

    async def _addresses(self, host: str) -> _Answer:
        cached = self._answers.get(host)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        # One look-up per host at a time, shared by every caller asking meanwhile; a caller that
        # gives up (cancelled) does not cancel it for the others.
        lookup = self._inflight.get(host)
        if lookup is None:
            lookup = asyncio.ensure_future(self._look_up_and_keep(host))
            self._inflight[host] = lookup
            lookup.add_done_callback(lambda _done: self._inflight.pop(host, None))
        return await asyncio.shield(lookup)

    async def _look_up_and_keep(self, host: str) -> _Answer:
        answer = await self._look_up(host)
        if len(self._answers) >= RESOLUTION_CACHE_HOSTS:
            self._answers.clear()  # tiny and short-lived: starting over costs a few look-ups
        self._answers[host] = (self._clock() + self._ttl, answer)
        return answer

    async def _look_up(self, host: str) -> _Answer:
        try:
            texts = await asyncio.wait_for(self._resolve(host), self._timeout)
        except TimeoutError:  # before OSError, of which it is a subclass
            return RefusedUrl(f"has a host that did not resolve within {self._timeout:g} s ({host})")
        except (OSError, UnicodeError):
            return RefusedUrl(f"has a host that does not resolve ({host})")
        if not texts:
            return RefusedUrl(f"has a host that does not resolve ({host})")
        addresses: list[IPAddress] = []
        for text in dict.fromkeys(texts):
            address = ip_address(text)
            if not self.allow_private and (reason := non_public_reason(address)) is not None:
                return RefusedUrl(f"must not point at a {reason} address ({host} resolves to {address})")
            addresses.append(address)
        return tuple(addresses)
