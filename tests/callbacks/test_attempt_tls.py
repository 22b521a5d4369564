"""An https attempt connects to the checked address yet speaks TLS to the name: the server name
(SNI) and the certificate check are the URL's host, and a certificate for another name fails."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import pytest
import trustme

from partner_gateway.callbacks.attempt import AttemptResult, attempt, new_client
from partner_gateway.callbacks.urls import CallbackUrlChecker

ANSWER = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


@dataclass
class TlsReceiver:
    port: int
    server_names: list[str | None] = field(default_factory=list)
    heads: list[bytes] = field(default_factory=list)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def tls_receiver(ca: trustme.CA, name: str) -> tuple[TlsReceiver, asyncio.Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    receiver = TlsReceiver(0)

    def note_server_name(_socket: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        receiver.server_names.append(server_name)

    context.sni_callback = note_server_name  # type: ignore[assignment]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            receiver.heads.append(head)
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length")
                ),
                0,
            )
            await reader.readexactly(length)
            writer.write(ANSWER)
            await writer.drain()
        except (asyncio.IncompleteReadError, ssl.SSLError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    receiver.port = server.sockets[0].getsockname()[1]
    return receiver, server


@pytest.fixture
def checker() -> CallbackUrlChecker:
    async def resolve(host: str) -> list[str]:
        assert host == "partner.example"
        return ["127.0.0.1"]

    return CallbackUrlChecker(allow_private=True, resolve=resolve, ttl_seconds=0.0)


async def post_to(
    ca: trustme.CA, checker: CallbackUrlChecker, certified: str, *, trusting_ca: bool = True
) -> tuple[TlsReceiver, AttemptResult]:
    """One attempt to https://partner.example/cb, served with a certificate for `certified`;
    the client trusts the test CA, or (not `trusting_ca`) the system's CAs only."""
    receiver, server = await tls_receiver(ca, certified)
    trust = None
    if trusting_ca:
        trust = ssl.create_default_context()
        ca.configure_trust(trust)
    client = new_client(2, trust)
    try:
        result = await attempt(
            client,
            checker,
            f"https://partner.example:{receiver.port}/cb",
            b"{}",
            "evt_1",
            ["whsec_x"],
            timeout=5,
        )
    finally:
        await client.close()
        server.close()
    return receiver, result


async def test_sni_and_the_certificate_are_the_names(ca: trustme.CA, checker: CallbackUrlChecker) -> None:
    receiver, result = await post_to(ca, checker, "partner.example")
    assert (result.status, result.error) == (204, None)
    assert receiver.server_names == ["partner.example"]
    [head] = receiver.heads
    assert f"host: partner.example:{receiver.port}".encode() in head.lower()


async def test_a_certificate_for_another_name_is_refused(ca: trustme.CA, checker: CallbackUrlChecker) -> None:
    receiver, result = await post_to(ca, checker, "other.example")
    assert result.status is None
    assert result.error is not None
    assert "certificate" in result.error.lower(), result.error
    assert receiver.heads == []  # nothing was sent to a server that could not prove the name


async def test_an_untrusted_certificate_is_refused(ca: trustme.CA, checker: CallbackUrlChecker) -> None:
    _receiver, result = await post_to(ca, checker, "partner.example", trusting_ca=False)  # the system's CAs
    assert result.status is None
    assert result.error is not None
    assert "certificate" in result.error.lower(), result.error
