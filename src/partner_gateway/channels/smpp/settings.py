"""Settings of the SMPP carriers and the SMS route table (PARTNER_GATEWAY_SMPP_CARRIERS,
PARTNER_GATEWAY_SMS_ROUTES; docs/configuration.md, docs/routing.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from partner_gateway.domain.routing import Route


class SmppCarrier(BaseModel):
    """One carrier account reached over SMPP 3.4 (PARTNER_GATEWAY_SMPP_CARRIERS is a JSON list)."""

    name: str = Field(
        "carrier", pattern=r"^[a-z0-9][a-z0-9_-]{0,30}$", description="Label; receipts match per carrier."
    )
    host: str
    port: int = Field(2775, gt=0, lt=65536)
    system_id: str = Field(max_length=15)
    password: SecretStr
    system_type: str = Field("", max_length=12)
    bind_mode: Literal["transceiver", "transmitter_receiver"] = "transceiver"
    binds: int = Field(1, ge=1, le=32, description="Sessions kept open to this carrier.")
    window: int = Field(10, ge=1, le=1000, description="Unanswered submit_sm per session.")
    throughput_per_second: float | None = Field(None, gt=0, description="submit_sm per second per session.")
    enquire_link_seconds: float = Field(30, gt=0)
    response_timeout_seconds: float = Field(10, gt=0)
    source_ton: int = Field(5, ge=0, le=6, description="TON for an alphanumeric sender (5).")
    source_npi: int = Field(0, ge=0, le=18)
    numeric_source_ton: int = Field(1, ge=0, le=6, description="TON for a numeric sender (1: international).")
    numeric_source_npi: int = Field(1, ge=0, le=18)
    dest_ton: int = Field(1, ge=0, le=6)
    dest_npi: int = Field(1, ge=0, le=18)
    default_source: str = Field("Gateway", max_length=20, description="Sender when the message names none.")
    receipt_id_format: Literal["same", "hex_submit_decimal_receipt", "decimal_submit_hex_receipt"] = Field(
        "same", description="How the carrier writes ids in receipts compared with submit_sm_resp."
    )
    failover_throttle_seconds: float = Field(
        1.0,
        ge=0,
        description="A carrier that paused our submits (ESME_RTHROTTLED) for longer than this is "
        "passed over for the next carrier of a route until the pause ends.",
    )


class SmsRoute(BaseModel):
    """One row of PARTNER_GATEWAY_SMS_ROUTES (docs/routing.md): where, and to which carriers."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(
        "", description="Leading digits of the destination (E.164 without '+'); '' matches all."
    )
    company: str | None = Field(None, description="Only this company's messages.")
    sender: str | None = Field(None, description="Only messages from this sender.")
    carrier: str | None = Field(None, description="The one carrier.")
    split: dict[str, float] | None = Field(None, description="Carriers by weight.")
    failover: list[str] | None = Field(None, description="Carriers in the order they are tried.")

    @model_validator(mode="after")
    def _one_target(self) -> SmsRoute:
        given = [name for name in ("carrier", "split", "failover") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"route {self.prefix or '*'}: give exactly one of carrier, split, failover (got "
                f"{', '.join(given) or 'none'})"
            )
        return self

    def to_route(self) -> Route:
        prefix = self.prefix.removeprefix("+")
        if self.split is not None:
            names = tuple(self.split)
            return Route(prefix, names, tuple(self.split[n] for n in names), self.company, self.sender)
        carriers = (self.carrier,) if self.carrier is not None else tuple(self.failover or ())
        return Route(prefix, carriers, None, self.company, self.sender)
