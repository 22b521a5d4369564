"""OAuth 2.0 access tokens for a Google service account: the JWT bearer grant (RFC 7523).

A JWT signed with the service account's RSA key (RS256; ``iss`` the account, ``scope`` RBM, ``aud`` the
token URI, ``iat``/``exp`` one hour apart) is exchanged at the token URI for an access token, which
is cached until ``token_refresh_margin_seconds`` before it expires. A 401 from RBM drops it
(:meth:`AccessTokens.invalidate`), so the next call fetches a new one.

Neither the key, nor the signed assertion, nor an access token is ever logged or put in an error.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Final

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import SecretStr

from partner_gateway.channels.rcs.settings import RbmSettings

logger = logging.getLogger(__name__)

RBM_SCOPE: Final = "https://www.googleapis.com/auth/rcsbusinessmessaging"
JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME_SECONDS: Final = 3600  # Google's maximum for a self-signed assertion
_SAFE_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class TokenError(Exception):
    """No access token could be had. ``transient``: asking again soon may help (network, 5xx);
    otherwise the credentials were refused (invalid_grant, ...) and an operator must act."""

    def __init__(self, description: str, *, transient: bool) -> None:
        super().__init__(description)
        self.description = description
        self.transient = transient


def load_private_key(pem: SecretStr) -> RSAPrivateKey:
    """The service account's RSA key from its PEM text; ValueError (naming no key material) otherwise."""
    try:
        key = serialization.load_pem_private_key(pem.get_secret_value().encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("service_account_private_key is not an unencrypted PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("service_account_private_key must be an RSA key (RS256)")
    return key


def signed_assertion(settings: RbmSettings, key: RSAPrivateKey, issued_at: int) -> str:
    """The JWT a service account presents at the token URI (RS256)."""
    claims = {
        "iss": settings.service_account_email,
        "scope": RBM_SCOPE,
        "aud": settings.token_uri,
        "iat": issued_at,
        "exp": issued_at + ASSERTION_LIFETIME_SECONDS,
    }
    kid = settings.service_account_private_key_id
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid} if kid else None)


class AccessTokens:
    """A cached access token for one service account; concurrent callers share one refresh.

    ``clock`` is monotonic seconds (injectable for tests); the JWT's ``iat`` uses the wall clock.
    """

    def __init__(
        self,
        settings: RbmSettings,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._client = client
        self._clock = clock
        self._key = load_private_key(settings.service_account_private_key)
        self._token: str | None = None
        self._valid_until = 0.0
        self._lock = asyncio.Lock()
        self.fetched = 0  # tokens obtained from the token URI

    async def get(self) -> str:
        """A valid access token: the cached one, or a new one. Raises TokenError."""
        token = self._cached()
        if token is not None:
            return token
        async with self._lock:
            token = self._cached()
            if token is None:
                token = await self._fetch()
            return token

    def invalidate(self, token: str) -> None:
        """RBM refused ``token``: forget it (unless a newer one replaced it meanwhile)."""
        if self._token == token:
            self._token = None

    def _cached(self) -> str | None:
        if self._token is not None and self._clock() < self._valid_until:
            return self._token
        return None

    async def _fetch(self) -> str:
        started = self._clock()
        assertion = signed_assertion(self._settings, self._key, int(time.time()))
        try:
            response = await self._client.post(
                self._settings.token_uri,
                data={"grant_type": JWT_BEARER_GRANT, "assertion": assertion},
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as error:
            raise TokenError(f"Token request failed: {type(error).__name__}", transient=True) from None
        if response.status_code != 200:
            code = _error_code(response)
            logger.warning("RBM token request refused: HTTP %d %s", response.status_code, code)
            transient = response.status_code >= 500 or response.status_code == 429
            raise TokenError(
                f"The token endpoint refused the service account (HTTP {response.status_code} {code})",
                transient=transient,
            )
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise TokenError("The token endpoint answered without an access token", transient=True) from None
        if not isinstance(token, str) or not token:
            raise TokenError("The token endpoint answered without an access token", transient=True)
        margin = min(self._settings.token_refresh_margin_seconds, lifetime / 2)
        self._token = token
        self._valid_until = started + lifetime - margin
        self.fetched += 1
        return token


def _error_code(response: httpx.Response) -> str:
    """The OAuth ``error`` code of a refusal (e.g. invalid_grant): safe to log, never the body."""
    try:
        code = response.json().get("error")
    except (ValueError, AttributeError):
        return "(no error code)"
    return code if isinstance(code, str) and _SAFE_ERROR_CODE.fullmatch(code) else "(no error code)"
