"""Service-account access tokens: the signed JWT, the exchange, caching, refresh and refusals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from pydantic import SecretStr

from channels.harness import secrets_kept_out_of_logs
from fixtures.rcs.rbm_kit import (
    ACCESS_TOKEN,
    SIGNED_JWT,
    key_pair,
    make_settings,
    secrets_of,
)
from partner_gateway.channels.rcs.auth import (
    ASSERTION_LIFETIME_SECONDS,
    JWT_BEARER_GRANT,
    RBM_SCOPE,
    AccessTokens,
    TokenError,
    load_private_key,
    signed_assertion,
)
from partner_gateway.channels.rcs.settings import RbmSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenEndpoint:
    """A token URI: answers ``answers`` in turn (the last one repeats) and keeps the forms it got."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers) or [token_response()]
        self.forms: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.forms.append(parse_qs(request.content.decode()))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def token_response(token: str = ACCESS_TOKEN, expires_in: int = 3600) -> httpx.Response:
    return httpx.Response(200, json={"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})


@pytest.fixture
def settings() -> RbmSettings:
    return make_settings()


@pytest.fixture(autouse=True)
def no_secret_logged(caplog: pytest.LogCaptureFixture, settings: RbmSettings) -> Iterator[None]:
    yield from secrets_kept_out_of_logs(caplog, [*secrets_of(settings, ["sim-token-2"]), SIGNED_JWT])


def tokens_with(
    endpoint: TokenEndpoint, settings: RbmSettings, clock: FakeClock | None = None
) -> AccessTokens:
    client = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    return AccessTokens(settings, client, clock=clock or FakeClock())


def test_the_assertion_is_an_rs256_jwt_google_accepts(settings: RbmSettings) -> None:
    now = int(time.time())
    assertion = signed_assertion(settings, load_private_key(settings.service_account_private_key), now)
    header = jwt.get_unverified_header(assertion)
    claims = jwt.decode(assertion, key_pair()[1], algorithms=["RS256"], audience=settings.token_uri)
    assert header["alg"] == "RS256"
    assert header["kid"] == "key-id-1"
    assert claims == {
        "iss": settings.service_account_email,
        "scope": RBM_SCOPE,
        "aud": settings.token_uri,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME_SECONDS,
    }


async def test_the_exchange_posts_the_jwt_bearer_grant(settings: RbmSettings) -> None:
    endpoint = TokenEndpoint()
    tokens = tokens_with(endpoint, settings)
    assert await tokens.get() == ACCESS_TOKEN
    (form,) = endpoint.forms
    assert form["grant_type"] == [JWT_BEARER_GRANT]
    claims = jwt.decode(
        form["assertion"][0], key_pair()[1], algorithms=["RS256"], audience=settings.token_uri
    )
    assert claims["iss"] == settings.service_account_email


async def test_a_token_is_cached_until_shortly_before_it_expires(settings: RbmSettings) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(token_response(ACCESS_TOKEN), token_response("sim-token-2"))
    tokens = tokens_with(endpoint, settings, clock)
    assert await tokens.get() == ACCESS_TOKEN
    clock.now += 3600 - settings.token_refresh_margin_seconds - 1
    assert await tokens.get() == ACCESS_TOKEN
    assert tokens.fetched == 1
    clock.now += 2  # inside the refresh margin
    assert await tokens.get() == "sim-token-2"
    assert tokens.fetched == 2


async def test_a_short_lived_token_is_refreshed_halfway(settings: RbmSettings) -> None:
    clock = FakeClock()
    tokens = tokens_with(
        TokenEndpoint(token_response(expires_in=100), token_response("sim-token-2")), settings, clock
    )
    await tokens.get()
    clock.now += 49
    assert await tokens.get() == ACCESS_TOKEN
    clock.now += 2
    assert await tokens.get() == "sim-token-2"


async def test_invalidate_drops_only_the_refused_token(settings: RbmSettings) -> None:
    tokens = tokens_with(TokenEndpoint(token_response(ACCESS_TOKEN), token_response("sim-token-2")), settings)
    first = await tokens.get()
    tokens.invalidate(first)
    second = await tokens.get()
    tokens.invalidate(first)  # a late 401 for the old token must not drop the new one
    assert (second, await tokens.get(), tokens.fetched) == ("sim-token-2", "sim-token-2", 2)


async def test_concurrent_callers_share_one_fetch(settings: RbmSettings) -> None:
    tokens = tokens_with(TokenEndpoint(), settings)
    got = await asyncio.gather(*(tokens.get() for _ in range(10)))
    assert set(got) == {ACCESS_TOKEN}
    assert tokens.fetched == 1


@pytest.mark.parametrize(
    ("answer", "transient"),
    [
        (
            httpx.Response(
                400, json={"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            ),
            False,
        ),
        (httpx.Response(401, json={"error": "invalid_client"}), False),
        (httpx.Response(503, text="unavailable"), True),
        (httpx.Response(429, json={"error": "rate_limited"}), True),
        (httpx.Response(200, text="not json"), True),
        (httpx.Response(200, json={"token_type": "Bearer"}), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
    ],
    ids=["invalid-grant", "invalid-client", "503", "429", "not-json", "no-token", "connect", "timeout"],
)
async def test_refusals_and_failures_raise_token_error(
    settings: RbmSettings, answer: httpx.Response | Exception, transient: bool
) -> None:
    tokens = tokens_with(TokenEndpoint(answer), settings)
    with pytest.raises(TokenError) as raised:
        await tokens.get()
    assert raised.value.transient is transient
    assert "BEGIN" not in raised.value.description


async def test_a_bad_key_is_refused_without_echoing_it() -> None:
    garbage = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError, match="not an unencrypted PEM private key") as raised:
        load_private_key(SecretStr(garbage))
    assert "c2VjcmV0" not in str(raised.value)
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="not an unencrypted PEM") as raised:
            AccessTokens(make_settings(service_account_private_key=SecretStr(garbage)), client)
    assert "c2VjcmV0" not in f"{raised.value!r} {raised.value.__cause__!r} {raised.value.__context__!r}"


def test_settings_never_show_their_secrets(settings: RbmSettings) -> None:
    shown = f"{settings!r} {settings} {settings.model_dump()}"
    for secret in secrets_of(settings):
        assert secret not in shown
