"""The gateway's own error codes, for ERROR and EXPIRED when the provider gave no code.

Provider codes are passed on prefixed with their source: `smpp:0x0000000B` (a submit_sm_resp
command_status), `smpp-err:075` (the `err` of a delivery receipt), `whatsapp:131026`, `rbm:404`.
The catalogue, with what each means and whether a new attempt could succeed, is docs/error-codes.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GatewayCode:
    code: str
    meaning: str
    retry_may_succeed: bool


EXPIRED_BEFORE_HANDOVER = GatewayCode(
    "gw:expired-before-handover",
    "The validity period ended before the gateway could hand the message to the provider "
    "(the provider was unreachable or kept throttling).",
    True,
)
RETRIES_EXHAUSTED = GatewayCode(
    "gw:retries-exhausted",
    "The provider kept failing transiently; the gateway gave up after its retry budget.",
    True,
)
NO_PROVIDER = GatewayCode(
    "gw:no-provider",
    "No provider is configured for the message's channel.",
    False,
)
INVALID_CONTENT = GatewayCode(
    "gw:invalid-content",
    "The provider could not be given the message's content (for example a text its encoding cannot carry).",
    False,
)
NO_ROUTE = GatewayCode(
    "gw:no-route",
    "No SMS route of PARTNER_GATEWAY_SMS_ROUTES matches the destination (and the company and sender).",
    False,
)

OPTED_OUT = GatewayCode(
    "gw:opted-out",
    "The destination opted out of the company's messages on this channel (it sent STOP or a "
    "synonym, or the company put it on its opt-out list); the message was not handed to any provider.",
    False,
)

CATALOGUE = (EXPIRED_BEFORE_HANDOVER, RETRIES_EXHAUSTED, NO_PROVIDER, INVALID_CONTENT, NO_ROUTE, OPTED_OUT)
