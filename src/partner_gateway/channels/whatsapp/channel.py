"""The WhatsApp channel's entry: its send request and rules, the Cloud API provider, its simulator."""

from __future__ import annotations

import logging
from secrets import token_urlsafe
from typing import TYPE_CHECKING, Annotated

import msgspec
from pydantic import SecretStr

from partner_gateway.channels.entry import (
    ChannelEntry,
    SendFields,
    SendRequest,
    Simulation,
    calling_back,
    configured_or_simulated,
)
from partner_gateway.channels.whatsapp.provider import WhatsAppProvider
from partner_gateway.channels.whatsapp.settings import WhatsAppSettings
from partner_gateway.domain import sending
from partner_gateway.domain.statuses import Channel
from partner_gateway.simulators.whatsapp import WhatsAppSimulator, WhatsAppSimulatorConfig

if TYPE_CHECKING:
    from partner_gateway.config import Settings

logger = logging.getLogger(__name__)


class WhatsAppTemplate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    language: Annotated[str, msgspec.Meta(description="Language code, e.g. en_US")]
    parameters: list[str] = msgspec.field(default_factory=list)


class WhatsAppSendRequest(SendRequest):
    text: Annotated[str | None, msgspec.Meta(description="A session message (up to 4096 characters)")] = None
    template: Annotated[WhatsAppTemplate | None, msgspec.Meta(description="A template message")] = None


def check(request: WhatsAppSendRequest, problems: sending.Problems) -> SendFields:
    if request.text is None and request.template is None:
        problems.append(
            ("text", "is required unless template is given: a session message's text, or a template")
        )
    elif request.text is not None and request.template is not None:
        problems.append(("text", "give either text (a session message) or template, not both"))
    sending.check_text(request.text, sending.WHATSAPP_TEXT_MAX, "text", problems)
    if request.template is not None:
        template = request.template
        sending.check_template(template.name, template.language, template.parameters, problems)
    return SendFields()


async def simulate(settings: Settings) -> Simulation | None:
    """With no account configured, a Cloud API simulator on loopback, and the account it serves."""
    if settings.whatsapp is not None:
        return None
    access_token, app_secret, verify_token = (token_urlsafe(24) for _ in range(3))
    simulator = WhatsAppSimulator(
        WhatsAppSimulatorConfig(
            access_token=access_token,
            app_secret=app_secret,
            status_delay_seconds=settings.simulator_receipt_delay_seconds,
            port=settings.simulator_whatsapp_port,
        )
    )
    await simulator.start()
    account = WhatsAppSettings(
        base_url=simulator.base_url,
        phone_number_id=simulator.config.phone_number_id,
        access_token=SecretStr(access_token),
        app_secret=SecretStr(app_secret),
        verify_token=SecretStr(verify_token),
    )
    logger.info("no WhatsApp account configured: built-in simulator at %s", simulator.base_url)
    return calling_back(simulator, account, "whatsapp")  # called back as Meta would


WHATSAPP: ChannelEntry[WhatsAppSendRequest] = ChannelEntry(
    channel=Channel.WHATSAPP,
    path="whatsapp",
    noun="a WhatsApp message",
    operation_id="sendWhatsApp",
    request_type=WhatsAppSendRequest,
    check=check,
    # Meta keeps trying for up to 30 days; a day is what partners usually want.
    validity=sending.ValidityBounds(60, 30 * 86_400, 86_400),
    build_provider=configured_or_simulated(lambda settings: settings.whatsapp, WhatsAppProvider),
    simulate=simulate,
)
