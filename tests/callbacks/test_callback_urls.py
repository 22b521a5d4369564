"""SPEC §5's callback URL rules: forms, literal addresses in every spelling, resolved names."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

import pytest

from partner_gateway.callbacks.urls import CallbackUrlChecker, RefusedUrl, ipv4_literal, parse


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://partner.example/cb", "absolute http or https"),
        ("/relative/path", "absolute http or https"),
        ("partner.example/cb", "absolute http or https"),
        ("https://user:pw@partner.example/cb", "user name or password"),
        ("https://user@partner.example/cb", "user name or password"),
        ("https://partner.example\\@127.0.0.1/", "backslashes"),
        ("https://partner.example /cb", "spaces"),
        ("https://partner.example:99999/cb", "not a valid URL"),
        ("https://partner.example:0/cb", "port 0"),
        ("https:///cb", "absolute http or https"),
        ("https://%31%32%37.0.0.1/", "characters a host name"),
        ("https://[not-v6]/", "not a valid URL"),
        ("https://a..b/", "characters a host name"),
        ("https://" + "a" * 2050 + ".example/", "at most 2048"),
    ],
)
def test_forms_refused(url: str, reason: str) -> None:
    with pytest.raises(RefusedUrl, match=reason):
        parse(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.1.2.3:8080/cb", "loopback"),
        ("http://10.0.0.5/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "private"),  # reserved 240/4 is in Python's private list
        ("http://255.255.255.255/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://0/", "unspecified"),
        ("http://100.64.0.1/", "non-public"),  # carrier-grade NAT
        ("http://192.0.2.1/", "private"),  # documentation
        # encoded IPv4: what URL libraries and browsers read as 127.0.0.1
        ("http://2130706433/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://0177.0.0.1/", "loopback"),
        ("http://127.1/", "loopback"),
        ("http://127.0.1/", "loopback"),
        ("http://0X7F.0.0.1/", "loopback"),
        ("http://127.0.0.1./", "loopback"),
        ("http://012.0.0.5/", "private"),
        ("http://167772165/", "private"),  # 10.0.0.5
        # IDNA: full-width digits and ideographic full stops become 127.0.0.1
        ("http://１２７。０。０。１/", "loopback"),
        # IPv6
        ("http://[::1]/", "loopback"),
        ("http://[::]/", "unspecified"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fe80::1%25eth0]/", "scoped"),
        ("http://[fc00::1]/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://[ff02::1]/", "multicast"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:7f00:1]/", "loopback"),
        ("http://[::ffff:10.0.0.5]/", "private"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 of 127.0.0.1
        ("http://[64:ff9b::a00:5]/", "private"),  # NAT64 of 10.0.0.5
        ("http://[::127.0.0.1]/", "reserved"),  # IPv4-compatible, deprecated
        ("http://[2001:db8::1]/", "private"),  # documentation
    ],
)
def test_literal_non_public_addresses_refused(url: str, reason: str) -> None:
    with pytest.raises(RefusedUrl, match=reason):
        parse(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/cb",
        "http://10.0.0.5/",
        "http://[::1]/",
        "http://2130706433/",
        "http://localhost/",
    ],
)
def test_private_addresses_allowed_when_configured(url: str) -> None:
    assert parse(url, allow_private=True).url == url


@pytest.mark.parametrize(
    ("url", "host", "port", "address"),
    [
        ("https://partner.example/cb", "partner.example", 443, None),
        ("http://partner.example/cb", "partner.example", 80, None),
        ("HTTPS://Partner.Example:8443/cb?x=1", "partner.example", 8443, None),
        ("https://93.184.216.34/cb", "93.184.216.34", 443, "93.184.216.34"),
        ("https://1572395042/", "93.184.216.34", 443, "93.184.216.34"),
        ("https://[2606:4700::1111]/", "2606:4700::1111", 443, "2606:4700::1111"),
        ("https://[::ffff:8.8.8.8]/", "::ffff:808:808", 443, "::ffff:808:808"),
        ("https://bücher.example/cb", "xn--bcher-kva.example", 443, None),
        ("https://partner_1.example/", "partner_1.example", 443, None),
        ("https://1.2.3.example/", "1.2.3.example", 443, None),
    ],
)
def test_public_destinations(url: str, host: str, port: int, address: str | None) -> None:
    destination = parse(url)
    assert (destination.host, destination.port) == (host, port)
    assert destination.address == (ip_address(address) if address else None)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("0x01020304", "1.2.3.4"),
        ("1.0x2.03.4", "1.2.3.4"),
        ("1.131844", "1.2.3.4"),
        ("1.2.772", "1.2.3.4"),
        ("0x", "0.0.0.0"),  # noqa: S104 - an expected value
        ("4294967295", "255.255.255.255"),
        ("example.com", None),
        ("1.2.3.example", None),
    ],
)
def test_ipv4_spellings(host: str, expected: str | None) -> None:
    address = ipv4_literal(host)
    assert (str(address) if address else None) == expected


@pytest.mark.parametrize(
    "host", ["1.2.3.4.5", "256.1.1.1", "1.2.3.256", "4294967296", "1.x.3", "08.1.1.1", "1..1"]
)
def test_numeric_hosts_that_are_no_address_refused(host: str) -> None:
    with pytest.raises(RefusedUrl):
        ipv4_literal(host)


def fake_resolver(answers: dict[str, list[str]], calls: list[str]):  # type: ignore[no-untyped-def]
    async def resolve(host: str) -> list[str]:
        calls.append(host)
        await asyncio.sleep(0)
        if host not in answers:
            raise OSError("Name or service not known")
        return answers[host]

    return resolve


ANSWERS = {
    "partner.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "internal.example": ["10.0.0.5"],
    "mixed.example": ["93.184.216.34", "127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "v6local.example": ["fe80::1%eth0"],
    "empty.example": [],
}


async def test_resolved_addresses_are_all_checked() -> None:
    checker = CallbackUrlChecker(resolve=fake_resolver(ANSWERS, []))
    checked = await checker.check("https://partner.example/cb")
    assert [str(a) for a in checked.addresses] == ANSWERS["partner.example"]
    for host, reason in [
        ("internal.example", "private address \\(internal.example resolves to 10.0.0.5\\)"),
        ("mixed.example", "loopback"),
        ("metadata.example", "link-local"),
        ("v6local.example", "scoped"),
        ("empty.example", "does not resolve"),
        ("nowhere.example", "does not resolve"),
    ]:
        with pytest.raises(RefusedUrl, match=reason):
            await checker.check(f"https://{host}/cb")


async def test_literal_addresses_are_not_resolved() -> None:
    calls: list[str] = []
    checker = CallbackUrlChecker(resolve=fake_resolver(ANSWERS, calls))
    checked = await checker.check("https://93.184.216.34/cb")
    assert checked.addresses == (ip_address("93.184.216.34"),)
    assert calls == []


async def test_a_burst_naming_one_host_resolves_it_once_until_the_answer_is_old() -> None:
    calls: list[str] = []
    clock = [0.0]
    checker = CallbackUrlChecker(
        resolve=fake_resolver(ANSWERS, calls), ttl_seconds=10, clock=lambda: clock[0]
    )
    await asyncio.gather(*(checker.check(f"https://partner.example/cb/{i}") for i in range(50)))
    results = await asyncio.gather(
        *(checker.check("https://internal.example/") for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(result, RefusedUrl) for result in results)
    assert calls == ["partner.example", "internal.example"]
    clock[0] = 9.9
    await checker.check("https://partner.example/")
    assert len(calls) == 2
    clock[0] = 10.1
    await checker.check("https://partner.example/")
    assert calls == ["partner.example", "internal.example", "partner.example"]


async def test_localhost_resolved_for_real_is_refused_unless_allowed() -> None:
    with pytest.raises(RefusedUrl, match="loopback"):
        await CallbackUrlChecker().check("http://localhost:9999/cb")
    allowed = await CallbackUrlChecker(allow_private=True).check("http://localhost:9999/cb")
    assert all(address.is_loopback for address in allowed.addresses)
    assert allowed.destination.port == 9999


async def test_a_slow_name_is_refused_in_time_and_one_caller_giving_up_does_not_stop_the_others() -> None:
    release = asyncio.Event()
    calls: list[str] = []

    async def slow(host: str) -> list[str]:
        calls.append(host)
        if host == "slow.example":
            await asyncio.sleep(60)
        await release.wait()
        return ["93.184.216.34"]

    checker = CallbackUrlChecker(resolve=slow, timeout_seconds=0.05)
    with pytest.raises(RefusedUrl, match=r"did not resolve within 0\.05 s"):
        await checker.check("https://slow.example/")
    impatient = asyncio.ensure_future(checker.check("https://partner.example/"))
    patient = asyncio.ensure_future(checker.check("https://partner.example/"))
    await asyncio.sleep(0.01)
    impatient.cancel()
    release.set()
    assert (await patient).addresses == (ip_address("93.184.216.34"),)
    assert calls == ["slow.example", "partner.example"]
