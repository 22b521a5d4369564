"""Settings of one WhatsApp Business Cloud API phone number (see docs/configuration.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class WhatsAppSettings(BaseModel):
    """Where the Graph API is, which business phone number sends, and the three secrets.

    `access_token` authorises sends; `app_secret` is the key Meta signs webhooks with
    (X-Hub-Signature-256); `verify_token` is the shared word of the GET subscription handshake.
    They are three different values and are never logged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(
        "https://graph.facebook.com",
        description="Graph API root; the simulator's URL in the embedded gateway.",
    )
    api_version: str = Field("v21.0", pattern=r"^v\d{1,3}\.\d{1,2}$", description="Graph API version.")
    phone_number_id: str = Field(
        pattern=r"^[0-9A-Za-z_-]{1,64}$", description="The business phone number's id (not the number)."
    )
    access_token: SecretStr = Field(description="System-user access token (Bearer) for sends.")
    app_secret: SecretStr = Field(description="The Meta app's secret: the key of webhook signatures.")
    verify_token: SecretStr = Field(description="The token Meta echoes in the GET verification handshake.")
    request_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="Per HTTP request to the Graph API."
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("access_token", "app_secret", "verify_token")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/{self.api_version}/{self.phone_number_id}/messages"
