"""One RBM agent's endpoint and credentials, as the operator configures them.

The secrets (the service account's private key, the webhook's client token) are ``SecretStr``: they
print as ``**********`` and are read with ``get_secret_value()`` only where they are used.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

RBM_BASE_URL = "https://rcsbusinessmessaging.googleapis.com"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a public endpoint, not a secret


class RbmSettings(BaseModel):
    """Settings of one RBM agent (SPEC §6). Times are seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(
        RBM_BASE_URL,
        description="RBM API root; a regional host (REGION-rcsbusinessmessaging.googleapis.com) also works",
    )
    agent_id: str = Field(min_length=1, description="The agent's id (the agentId query parameter)")
    service_account_email: str = Field(
        min_length=1, description="The service account that signs the token requests (JWT iss)"
    )
    service_account_private_key: SecretStr = Field(
        description="The service account's RSA private key, PEM (the private_key of its JSON key file)"
    )
    service_account_private_key_id: str | None = Field(
        None, description="The key's id (private_key_id of the JSON key file), sent as the JWT kid"
    )
    token_uri: str = Field(GOOGLE_TOKEN_URI, description="OAuth 2.0 token endpoint (JWT aud)")
    webhook_client_token: SecretStr = Field(
        description="The webhook's clientToken: answers the setup handshake and keys X-Goog-Signature"
    )
    request_timeout_seconds: float = Field(10.0, gt=0, le=120, description="Per HTTP request to RBM")
    token_refresh_margin_seconds: float = Field(
        300.0, ge=0, description="Fetch a new access token this long before the cached one expires"
    )
    auth_retry_after_seconds: float = Field(
        300.0,
        gt=0,
        description="Retry delay after RBM refused our credentials even with a fresh token (401/403)",
    )

    @field_validator("base_url", "token_uri")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
