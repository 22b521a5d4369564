"""Callback settings (SPEC §5): set, read, rotate, clear; URL rules on settings and sends; 401; tenancy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from partner_gateway.api.app import create_app
from partner_gateway.callbacks.urls import CallbackUrlChecker
from partner_gateway.config import Settings
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.callback_settings import CallbackSettingsRepository
from support import BASE, Partner, make_partner

SETTINGS = f"{BASE}/callbacks/settings"
ANSWERS = {"partner.example": ["93.184.216.34"], "internal.example": ["10.0.0.5"]}
SMS = {"to": "+4915112345678", "text": "hi"}


@pytest.fixture
def lookups(runtime: Runtime) -> list[str]:
    """The names resolved: a resolver at the process edge that knows two hosts (no DNS here)."""
    calls: list[str] = []

    async def resolve(host: str) -> list[str]:
        calls.append(host)
        if host == "localhost":  # the real thing, as the system answers it
            from partner_gateway.callbacks.urls import system_resolver

            return await system_resolver(host)
        if host not in ANSWERS:
            raise OSError("Name or service not known")
        return ANSWERS[host]

    runtime.callback_urls = CallbackUrlChecker(resolve=resolve)
    return calls


async def test_set_read_rotate_clear(client: httpx.AsyncClient, partner: Partner, lookups: list[str]) -> None:
    headers = partner.headers
    assert (await client.get(SETTINGS, headers=headers)).json() == {"url": None, "secretSet": False}

    first = await client.put(SETTINGS, json={"url": "https://partner.example/cb"}, headers=headers)
    assert first.status_code == 200, first.text
    body = first.json()
    secret = body.pop("secret")
    assert secret.startswith("whsec_")
    assert body == {"url": "https://partner.example/cb", "secretSet": True}
    read = await client.get(SETTINGS, headers=headers)
    assert read.json() == {"url": "https://partner.example/cb", "secretSet": True}
    assert secret not in read.text

    moved = await client.put(SETTINGS, json={"url": "https://93.184.216.34/other"}, headers=headers)
    assert moved.json() == {"url": "https://93.184.216.34/other", "secretSet": True}

    rotated = await client.put(
        SETTINGS, json={"url": "https://partner.example/cb", "rotateSecret": True}, headers=headers
    )
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != secret

    cleared = await client.put(SETTINGS, json={"url": None}, headers=headers)
    assert cleared.json() == {"url": None, "secretSet": True}
    assert (await client.get(SETTINGS, headers=headers)).json() == {"url": None, "secretSet": True}
    assert lookups == ["partner.example"]  # resolved once: the answer is cached


async def test_rotation_signs_with_both_secrets(
    client: httpx.AsyncClient, partner: Partner, runtime: Runtime, lookups: list[str]
) -> None:
    old = (
        await client.put(SETTINGS, json={"url": "https://partner.example/"}, headers=partner.headers)
    ).json()
    new = (
        await client.put(
            SETTINGS, json={"url": "https://partner.example/", "rotateSecret": True}, headers=partner.headers
        )
    ).json()
    async with runtime.database.read() as connection:
        repository = CallbackSettingsRepository(connection, runtime.callback_secrets)
        settings = await repository.get(partner.company_id)
        assert settings is not None
        assert settings.rotated_at is not None
        secrets = await repository.signing_secrets(partner.company_id, settings.rotated_at)
    assert secrets == (new["secret"], old["secret"])


async def test_a_secret_for_per_message_urls_only(
    client: httpx.AsyncClient, partner: Partner, lookups: list[str]
) -> None:
    """A partner who sets no default URL gets a secret by rotating with the URL left null."""
    made = await client.put(SETTINGS, json={"url": None, "rotateSecret": True}, headers=partner.headers)
    assert made.json()["secret"].startswith("whsec_")
    assert made.json()["url"] is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://partner.example/cb", "absolute http or https"),
        ("partner.example/cb", "absolute http or https"),
        ("https://user:pw@partner.example/cb", "user name or password"),
        ("http://127.0.0.1:8080/cb", "loopback"),
        ("http://10.0.0.5/cb", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("https://internal.example/cb", "internal.example resolves to 10.0.0.5"),
        ("http://localhost:9000/cb", "loopback"),
        ("https://nowhere.example/cb", "does not resolve"),
        ("https://" + "a" * 2048 + ".example/", "at most 2048"),
    ],
)
async def test_urls_refused_name_the_field_and_the_reason(
    client: httpx.AsyncClient, partner: Partner, lookups: list[str], url: str, reason: str
) -> None:
    response = await client.put(SETTINGS, json={"url": url}, headers=partner.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/invalid-request")
    [error] = problem["errors"]
    assert error["field"] == "url"
    assert reason in error["message"]
    assert (await client.get(SETTINGS, headers=partner.headers)).json()["url"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"rotateSecret": True}, "url"),
        ({"url": 5}, "url"),
        ({"url": "https://partner.example/", "rotateSecret": "yes"}, "rotateSecret"),
        ({"url": "https://partner.example/", "surprise": 1}, "body"),
        ([], "body"),
    ],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient, partner: Partner, lookups: list[str], body: object, field: str
) -> None:
    response = await client.put(SETTINGS, json=body, headers=partner.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]], response.json()


async def test_not_json_is_400(client: httpx.AsyncClient, partner: Partner) -> None:
    response = await client.put(
        SETTINGS, content=b"{", headers={**partner.headers, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer pgw_unknown"}, {"Authorization": "Basic x"}]
)
async def test_a_key_is_required(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for response in (
        await client.get(SETTINGS, headers=headers),
        await client.put(SETTINGS, json={"url": "https://93.184.216.34/"}, headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_key_sees_only_its_own_company(
    client: httpx.AsyncClient, partner: Partner, other_partner: Partner, lookups: list[str]
) -> None:
    mine = await client.put(SETTINGS, json={"url": "https://partner.example/a"}, headers=partner.headers)
    assert mine.status_code == 200
    assert (await client.get(SETTINGS, headers=other_partner.headers)).json() == {
        "url": None,
        "secretSet": False,
    }
    theirs = await client.put(
        SETTINGS, json={"url": "https://partner.example/b"}, headers=other_partner.headers
    )
    assert theirs.json()["secret"] != mine.json()["secret"]
    assert (await client.get(SETTINGS, headers=partner.headers)).json()["url"] == "https://partner.example/a"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/cb", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://169.254.169.254/", "link-local"),
        ("https://internal.example/cb", "resolves to 10.0.0.5"),
        ("http://localhost/cb", "loopback"),
        ("https://u@partner.example/", "user name or password"),
    ],
)
@pytest.mark.parametrize("path", ["sms", "whatsapp"])
async def test_a_sends_callback_url_follows_the_same_rules(
    client: httpx.AsyncClient, partner: Partner, lookups: list[str], url: str, reason: str, path: str
) -> None:
    body = SMS if path == "sms" else {"to": "+4915112345678", "text": "hi"}
    response = await client.post(
        f"{BASE}/{path}/messages", json={**body, "callbackUrl": url}, headers=partner.headers
    )
    assert response.status_code == 400, response.text
    errors = [error for error in response.json()["errors"] if error["field"] == "callbackUrl"]
    assert len(errors) == 1
    assert reason in errors[0]["message"]


async def test_a_send_with_a_public_callback_url_is_accepted_and_resolves_once(
    client: httpx.AsyncClient, partner: Partner, lookups: list[str]
) -> None:
    for _ in range(3):
        response = await client.post(
            f"{BASE}/sms/messages",
            json={**SMS, "callbackUrl": "https://partner.example/cb"},
            headers=partner.headers,
        )
        assert response.status_code == 202, response.text
    assert lookups == ["partner.example"]


async def test_a_send_without_callback_url_resolves_nothing(
    client: httpx.AsyncClient, partner: Partner, lookups: list[str]
) -> None:
    response = await client.post(f"{BASE}/sms/messages", json=SMS, headers=partner.headers)
    assert response.status_code == 202
    assert lookups == []


async def test_a_malformed_callback_url_gets_one_problem(
    client: httpx.AsyncClient, partner: Partner, lookups: list[str]
) -> None:
    response = await client.post(
        f"{BASE}/sms/messages", json={**SMS, "callbackUrl": "ftp://x"}, headers=partner.headers
    )
    assert [error["field"] for error in response.json()["errors"]] == ["callbackUrl"]
    assert lookups == []


@pytest.fixture
async def private_client(
    tmp_path: Path, postgres_url: str | None
) -> AsyncIterator[tuple[httpx.AsyncClient, Partner]]:
    settings = Settings(
        data_dir=tmp_path / "private", database_url=postgres_url, callback_allow_private_networks=True
    )
    started = await Runtime.start(settings)
    try:
        partner = await make_partner(started, "Loopback Ltd")
        transport = httpx.ASGITransport(app=create_app(settings, started))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield http, partner
    finally:
        await started.close()


async def test_private_networks_allowed_when_configured(
    private_client: tuple[httpx.AsyncClient, Partner],
) -> None:
    client, partner = private_client
    for url in ("http://127.0.0.1:9000/cb", "http://localhost:9000/cb", "http://10.0.0.5/"):
        response = await client.put(SETTINGS, json={"url": url}, headers=partner.headers)
        assert response.status_code == 200, response.text
        assert response.json()["url"] == url
        sent = await client.post(
            f"{BASE}/sms/messages", json={**SMS, "callbackUrl": url}, headers=partner.headers
        )
        assert sent.status_code == 202, sent.text
    refused = await client.put(SETTINGS, json={"url": "ftp://127.0.0.1/"}, headers=partner.headers)
    assert refused.status_code == 400


async def test_options_lists_both_methods_of_the_settings(client: httpx.AsyncClient) -> None:
    response = await client.options(SETTINGS)
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, OPTIONS, PUT"
    entry = await client.options(f"{BASE}/opt-outs/SMS/%2B4915112345678")
    assert (entry.status_code, entry.headers["allow"]) == (204, "DELETE, GET, OPTIONS, PUT")
    # The other paths keep Litestar's own answer.
    other = await client.options(f"{BASE}/messages/history")
    assert other.status_code == 204
    assert other.headers["allow"] == "GET, OPTIONS"
