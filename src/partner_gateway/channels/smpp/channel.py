"""The SMS channel's entry: its send request and rules, the SMPP provider, the SMSC simulator."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import msgspec
from pydantic import SecretStr

from partner_gateway.channels.base import Provider
from partner_gateway.channels.entry import ChannelEntry, ProviderContext, SendFields, SendRequest, Simulation
from partner_gateway.channels.smpp.bind_slots import BindLeasing, new_holder_id
from partner_gateway.channels.smpp.provider import SmppProvider
from partner_gateway.channels.smpp.routed import RoutedSmsProvider
from partner_gateway.channels.smpp.settings import SmppCarrier
from partner_gateway.domain import sending
from partner_gateway.domain.statuses import Channel
from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator
from partner_gateway.store.repositories.bind_slots import BindSlotStore
from partner_gateway.store.repositories.carrier_stats import CarrierStatsStore
from partner_gateway.store.repositories.delivery.parts import parts_provider

if TYPE_CHECKING:
    from partner_gateway.config import Settings

logger = logging.getLogger(__name__)
SIMULATOR_SYSTEM_ID = "gateway"
SIMULATOR_PASSWORD = "sim-only"  # noqa: S105 - the embedded simulator's, on loopback only


class SmsSendRequest(SendRequest):
    text: Annotated[str, msgspec.Meta(description="GSM-7 where possible, else UCS-2; up to 10 segments")]
    from_: Annotated[
        str | None,
        msgspec.Meta(description="Sender: up to 11 alphanumeric characters, or a number"),
    ] = msgspec.field(default=None, name="from")


def check(request: SmsSendRequest, problems: sending.Problems) -> SendFields:
    sending.check_sms_sender(request.from_, problems)
    text = sending.check_sms_text(request.text, problems)
    return SendFields(sender=request.from_, encoding=text.encoding, segments=text.segments)


async def simulate(settings: Settings) -> Simulation | None:
    """With no carrier configured, an SMSC simulator on loopback, and the carrier that binds to it."""
    if settings.smpp_carriers:
        return None
    delay = settings.simulator_receipt_delay_seconds
    smsc = SmscSimulator(
        SmscConfig(
            port=settings.simulator_smsc_port,
            system_id=SIMULATOR_SYSTEM_ID,
            password=SIMULATOR_PASSWORD,
            receipt_delay_min_seconds=delay / 2,
            receipt_delay_max_seconds=max(delay, 0.001),
        )
    )
    port = await smsc.start()
    logger.info("no SMPP carrier configured: built-in SMSC simulator on 127.0.0.1:%d", port)
    carrier = SmppCarrier(
        name="simulator",
        host="127.0.0.1",
        port=port,
        system_id=SIMULATOR_SYSTEM_ID,
        password=SecretStr(SIMULATOR_PASSWORD),
        window=200,
        enquire_link_seconds=30,
    )
    return Simulation(provider_settings=[carrier], stop=smsc.stop)


def build_provider(context: ProviderContext) -> Provider | None:
    """With a runtime, a carrier's binds are a cluster-wide total, shared through leases in its
    store; `exclusive`: this is the only worker on that store (the embedded gateway)."""
    carriers = list(context.settings.smpp_carriers) or list(context.simulated or [])
    if not carriers:
        return None
    leasing = None
    stats = None
    if context.runtime is not None:
        stats = CarrierStatsStore(context.runtime.database)
        leasing = BindLeasing(
            BindSlotStore(context.runtime.database),
            holder=new_holder_id(),
            lease_seconds=context.settings.smpp_bind_lease_seconds,
            exclusive=context.exclusive,
        )
    settings = context.settings
    if len(carriers) == 1 and settings.sms_routes is None:
        return SmppProvider(carriers[0], leasing=leasing, stats=stats)  # one carrier: nothing to route
    table = settings.route_table(carriers)
    routed = {name for route in table.routes for name in route.carriers}
    # A carrier no route names is not bound: it would hold the SMSC's sessions for nothing.
    providers = [
        SmppProvider(carrier, leasing=leasing, stats=stats) for carrier in carriers if carrier.name in routed
    ]
    parts_carrier = None
    if context.runtime is not None:
        database = context.runtime.database

        async def parts_carrier(message_id: str) -> str | None:
            async with database.read() as connection:
                return await parts_provider(connection, message_id)

    up_in_cluster = None
    if stats is not None and leasing is not None and not leasing.exclusive:
        reports = stats
        within_ms = int(leasing.lease_seconds * 1000)  # three report intervals

        async def up_in_cluster() -> set[str]:
            return await reports.up(within_ms)

    return RoutedSmsProvider(
        providers,
        table,
        parts_carrier=parts_carrier,
        up_in_cluster=up_in_cluster,
        cluster_interval=leasing.interval if leasing is not None else 10.0,
    )


SMS: ChannelEntry[SmsSendRequest] = ChannelEntry(
    channel=Channel.SMS,
    path="sms",
    noun="an SMS",
    operation_id="sendSms",
    request_type=SmsSendRequest,
    check=check,
    # SMSCs clamp validity to about a week; asking for more only hides that.
    validity=sending.ValidityBounds(60, 7 * 86_400, 86_400),
    build_provider=build_provider,
    simulate=simulate,
)
