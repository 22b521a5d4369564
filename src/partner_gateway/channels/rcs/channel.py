"""The RCS channel's entry: its send request and rules, the RBM provider, its simulator."""

from __future__ import annotations

import logging
from secrets import token_urlsafe
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from partner_gateway.channels.entry import (
    ChannelEntry,
    SendFields,
    SendRequest,
    Simulation,
    calling_back,
    configured_or_simulated,
)
from partner_gateway.channels.rcs.provider import RbmProvider
from partner_gateway.channels.rcs.settings import RbmSettings
from partner_gateway.domain import sending
from partner_gateway.domain.statuses import Channel
from partner_gateway.simulators.rbm import RbmSimConfig, RbmSimulator

if TYPE_CHECKING:
    from partner_gateway.config import Settings

logger = logging.getLogger(__name__)

FALLBACK_AFTER_MIN = 10
FALLBACK_AFTER_MAX = 30 * 86_400
DEFAULT_VALIDITY_SECONDS = 86_400  # a day is what partners usually want


class RcsSuggestion(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    type: Literal["reply", "dial", "openUrl"]
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=25)]
    postback_data: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    phone_number: str | None = None  # for `dial`
    url: str | None = None  # for `openUrl`


class RcsRichCard(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    title: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    media_url: str | None = None
    media_height: Literal["SHORT", "MEDIUM", "TALL"] = "MEDIUM"
    suggestions: Annotated[list[RcsSuggestion], msgspec.Meta(max_length=4)] = msgspec.field(
        default_factory=list
    )


class RcsFallbackSms(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    text: str
    from_: str | None = msgspec.field(default=None, name="from")
    after_seconds: (
        Annotated[
            int,
            msgspec.Meta(
                ge=FALLBACK_AFTER_MIN,
                le=FALLBACK_AFTER_MAX,
                description="Also fall back when the RCS message is not delivered within this many "
                "seconds: it is sent with this time to live, and RBM's revocation at its end sends "
                "the SMS (with the rest of the validity). Less than validitySeconds.",
            ),
        ]
        | None
    ) = msgspec.field(default=None, name="afterSeconds")


class RcsSendRequest(SendRequest):
    text: Annotated[str | None, msgspec.Meta(description="Up to 3072 characters")] = None
    suggestions: Annotated[list[RcsSuggestion], msgspec.Meta(max_length=11)] = msgspec.field(
        default_factory=list
    )
    rich_card: RcsRichCard | None = None
    fallback_sms: Annotated[
        RcsFallbackSms | None, msgspec.Meta(description="Sent as SMS when the destination cannot get RCS")
    ] = None


def check(request: RcsSendRequest, problems: sending.Problems) -> SendFields:
    if request.text is None and request.rich_card is None:
        problems.append(("text", "is required unless richCard is given: a text message, or a rich card"))
    elif request.text is not None and request.rich_card is not None:
        problems.append(("text", "give either text or richCard, not both"))
    sending.check_text(request.text, sending.RCS_TEXT_MAX, "text", problems)
    suggestions = list(enumerate(request.suggestions))
    prefix = "suggestions"
    if request.rich_card is not None:
        card = request.rich_card
        if not (card.title or card.description or card.media_url):
            problems.append(("richCard", "needs a title, a description or a mediaUrl"))
        sending.check_http_url(card.media_url, "richCard.mediaUrl", problems)
        if request.suggestions:
            problems.append(("suggestions", "put a rich card's suggestions inside richCard"))
        suggestions, prefix = list(enumerate(card.suggestions)), "richCard.suggestions"
    for index, suggestion in suggestions:
        field = f"{prefix}[{index}]"
        if suggestion.type == "dial":
            if suggestion.phone_number is None:
                problems.append((f"{field}.phoneNumber", "is required for a dial suggestion"))
            else:
                nested: sending.Problems = []
                sending.check_destination(suggestion.phone_number, nested)
                problems.extend((f"{field}.phoneNumber", message) for _, message in nested)
        if suggestion.type == "openUrl":
            if suggestion.url is None:
                problems.append((f"{field}.url", "is required for an openUrl suggestion"))
            sending.check_http_url(suggestion.url, f"{field}.url", problems)
    if request.fallback_sms is not None:
        sending.check_sms_text(request.fallback_sms.text, problems, field="fallbackSms.text")
        sending.check_sms_sender(request.fallback_sms.from_, problems, field="fallbackSms.from")
        after = request.fallback_sms.after_seconds
        validity = request.validity_seconds or DEFAULT_VALIDITY_SECONDS
        if after is not None and after >= validity:
            problems.append(
                ("fallbackSms.afterSeconds", f"must be less than the message's validity ({validity} seconds)")
            )
    return SendFields()


async def simulate(settings: Settings) -> Simulation | None:
    """With no agent configured, an RBM simulator on loopback, and the agent it serves."""
    if settings.rbm is not None:
        return None
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    client_token = token_urlsafe(24)
    config = RbmSimConfig(
        public_key_pem=public_pem,
        client_token=client_token,
        event_delay_seconds=settings.simulator_receipt_delay_seconds,
        read_delay_seconds=settings.simulator_receipt_delay_seconds,
        ttl_cap_seconds=settings.simulator_ttl_cap_seconds,
        port=settings.simulator_rbm_port,
    )
    simulator = RbmSimulator(config)
    await simulator.start()
    agent = RbmSettings(
        base_url=simulator.base_url,
        agent_id=config.agent_id,
        service_account_email=config.service_account_email,
        service_account_private_key=SecretStr(private_pem),
        token_uri=simulator.token_uri,
        webhook_client_token=SecretStr(client_token),
    )
    logger.info("no RBM agent configured: built-in simulator at %s", simulator.base_url)
    return calling_back(simulator, agent, "rcs")  # called back as Google would


RCS: ChannelEntry[RcsSendRequest] = ChannelEntry(
    channel=Channel.RCS,
    path="rcs",
    noun="an RCS message",
    operation_id="sendRcs",
    request_type=RcsSendRequest,
    check=check,
    # Google keeps trying for up to 30 days; a day is what partners usually want.
    validity=sending.ValidityBounds(60, 30 * 86_400, DEFAULT_VALIDITY_SECONDS),
    build_provider=configured_or_simulated(lambda settings: settings.rbm, RbmProvider),
    simulate=simulate,
)
