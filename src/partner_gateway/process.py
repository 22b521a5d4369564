"""What one gateway process runs, put together: the API, the dispatcher, the providers, and,
when no provider is configured, the built-in simulators they talk to."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from dataclasses import dataclass, field
from secrets import token_urlsafe
from typing import TYPE_CHECKING, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from partner_gateway.api.app import create_app
from partner_gateway.api.server import build_config
from partner_gateway.channels.base import Provider
from partner_gateway.channels.rcs.provider import RbmProvider
from partner_gateway.channels.rcs.settings import RbmSettings
from partner_gateway.channels.smpp.bind_slots import BindLeasing, new_holder_id
from partner_gateway.channels.smpp.provider import SmppProvider
from partner_gateway.channels.whatsapp.provider import WhatsAppProvider
from partner_gateway.channels.whatsapp.settings import WhatsAppSettings
from partner_gateway.config import Settings, SmppCarrier
from partner_gateway.dispatch.queues.rabbitmq import RabbitWorkQueue
from partner_gateway.dispatch.reports import ReportRecorder
from partner_gateway.dispatch.worker import Dispatcher
from partner_gateway.domain.statuses import Channel
from partner_gateway.embedded_server import InLoopServer
from partner_gateway.runtime import Runtime
from partner_gateway.simulators.rbm import RbmSimConfig, RbmSimulator
from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator
from partner_gateway.simulators.whatsapp import WhatsAppSimulator, WhatsAppSimulatorConfig
from partner_gateway.store.batching import WriteBatcher
from partner_gateway.store.repositories.bind_slots import BindSlotStore

if TYPE_CHECKING:
    from uvicorn._types import ASGIApplication

logger = logging.getLogger(__name__)
SIMULATOR_SYSTEM_ID = "gateway"
SIMULATOR_PASSWORD = "sim-only"  # noqa: S105 - the embedded simulator's, on loopback only


@dataclass
class Simulators:
    smsc: SmscSimulator | None = None
    whatsapp: WhatsAppSimulator | None = None
    whatsapp_settings: WhatsAppSettings | None = None
    rbm: RbmSimulator | None = None
    rbm_settings: RbmSettings | None = None

    def point_webhooks_at(self, gateway_url: str) -> None:
        """The simulators call the gateway back, as Meta and Google would."""
        if self.whatsapp is not None:
            self.whatsapp.webhook_url = f"{gateway_url}/webhooks/whatsapp"
        if self.rbm is not None:
            self.rbm.webhook_url = f"{gateway_url}/webhooks/rcs"

    async def stop(self) -> None:
        for simulator in (self.smsc, self.whatsapp, self.rbm):
            if simulator is not None:
                await simulator.stop()


@dataclass
class Pipeline:
    """The delivery side of a process: providers, the dispatcher and the writes they share."""

    batcher: WriteBatcher
    recorder: ReportRecorder
    dispatcher: Dispatcher
    providers: dict[Channel, Provider]
    simulators: Simulators = field(default_factory=Simulators)
    queue: RabbitWorkQueue | None = None

    async def stop(self) -> None:
        await self.dispatcher.stop()
        if self.queue is not None:
            await self.queue.close()
        for provider in self.providers.values():
            await provider.stop()
        await self.batcher.stop()
        await self.simulators.stop()


async def start_simulators(settings: Settings) -> Simulators:
    simulators = Simulators()
    if not settings.smpp_carriers:
        delay = settings.simulator_receipt_delay_seconds
        simulators.smsc = SmscSimulator(
            SmscConfig(
                port=0,
                system_id=SIMULATOR_SYSTEM_ID,
                password=SIMULATOR_PASSWORD,
                receipt_delay_min_seconds=delay / 2,
                receipt_delay_max_seconds=max(delay, 0.001),
            )
        )
        port = await simulators.smsc.start()
        logger.info("no SMPP carrier configured: built-in SMSC simulator on 127.0.0.1:%d", port)
    if settings.whatsapp is None:
        secrets = [token_urlsafe(24) for _ in range(3)]
        simulators.whatsapp = WhatsAppSimulator(
            WhatsAppSimulatorConfig(
                access_token=secrets[0],
                app_secret=secrets[1],
                status_delay_seconds=settings.simulator_receipt_delay_seconds,
            )
        )
        await simulators.whatsapp.start()
        simulators.whatsapp_settings = WhatsAppSettings(
            base_url=simulators.whatsapp.base_url,
            phone_number_id=simulators.whatsapp.config.phone_number_id,
            access_token=SecretStr(secrets[0]),
            app_secret=SecretStr(secrets[1]),
            verify_token=SecretStr(secrets[2]),
        )
        logger.info("no WhatsApp account configured: built-in simulator at %s", simulators.whatsapp.base_url)
    if settings.rbm is None:
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
        rbm_config = RbmSimConfig(
            public_key_pem=public_pem,
            client_token=client_token,
            event_delay_seconds=settings.simulator_receipt_delay_seconds,
            read_delay_seconds=settings.simulator_receipt_delay_seconds,
            ttl_cap_seconds=settings.simulator_ttl_cap_seconds,
        )
        simulators.rbm = RbmSimulator(rbm_config)
        await simulators.rbm.start()
        simulators.rbm_settings = RbmSettings(
            base_url=simulators.rbm.base_url,
            agent_id=rbm_config.agent_id,
            service_account_email=rbm_config.service_account_email,
            service_account_private_key=SecretStr(private_pem),
            token_uri=simulators.rbm.token_uri,
            webhook_client_token=SecretStr(client_token),
        )
        logger.info("no RBM agent configured: built-in simulator at %s", simulators.rbm.base_url)
    return simulators


def build_providers(
    settings: Settings, simulators: Simulators, runtime: Runtime | None = None, *, exclusive: bool = False
) -> dict[Channel, Provider]:
    """With `runtime`, a carrier's binds are a cluster-wide total, shared through leases in its
    store; `exclusive`: this is the only worker on that store (the embedded gateway)."""
    carriers = list(settings.smpp_carriers)
    if not carriers and simulators.smsc is not None:
        carriers = [
            SmppCarrier(
                name="simulator",
                host="127.0.0.1",
                port=simulators.smsc.port,
                system_id=SIMULATOR_SYSTEM_ID,
                password=SecretStr(SIMULATOR_PASSWORD),
                window=200,
                enquire_link_seconds=30,
            )
        ]
    providers: dict[Channel, Provider] = {}
    if carriers:
        # Routing between several carriers is a later feature: the first carrier sends.
        leasing = None
        if runtime is not None:
            leasing = BindLeasing(
                BindSlotStore(runtime.database),
                holder=new_holder_id(),
                lease_seconds=settings.smpp_bind_lease_seconds,
                exclusive=exclusive,
            )
        providers[Channel.SMS] = SmppProvider(carriers[0], leasing=leasing)
    whatsapp = settings.whatsapp or simulators.whatsapp_settings
    if whatsapp is not None:
        providers[Channel.WHATSAPP] = WhatsAppProvider(whatsapp)
    rbm = settings.rbm or simulators.rbm_settings
    if rbm is not None:
        providers[Channel.RCS] = RbmProvider(rbm)
    return providers


async def start_pipeline(settings: Settings, runtime: Runtime) -> Pipeline:
    """The delivery side. In the embedded gateway (role "all", no broker) this process is the
    only worker and starts simulators for what is not configured; in a cluster it is one of
    many, and every provider must be configured."""
    embedded = settings.role == "all" and settings.amqp_url is None
    simulators = await start_simulators(settings) if embedded else Simulators()
    batcher = runtime.writes  # the API's sends share the group commits
    batcher.start()
    recorder = ReportRecorder(batcher)
    providers = build_providers(settings, simulators, runtime, exclusive=embedded)
    if settings.role == "api":
        # An API process serves the providers' webhooks; it opens no carrier connection.
        providers = {channel: p for channel, p in providers.items() if p.webhook_routes()}
    for provider in providers.values():
        await provider.start(recorder)
    queue = RabbitWorkQueue(settings.amqp_url.get_secret_value()) if settings.amqp_url else None
    dispatcher = Dispatcher(
        settings, batcher, providers if settings.role != "api" else {}, exclusive=embedded, queue=queue
    )
    if settings.role != "api":
        await dispatcher.start()
        runtime.on_accepted = dispatcher.wake
    return Pipeline(batcher, recorder, dispatcher, providers, simulators, queue)


async def _run_until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(settings: Settings) -> None:
    """Run this process's role: API and worker together (the embedded gateway), or one of them."""
    # The API's port is taken first: a port in use fails at once, and no simulator started
    # below can be handed the same port by the kernel.
    listener = None if settings.role == "worker" else socket.create_server((settings.host, settings.port))
    runtime = await Runtime.start(settings)
    pipeline = await start_pipeline(settings, runtime)
    if settings.role == "worker":
        gc.freeze()  # as for the API below
        await _run_until_signalled()
        logger.info("stopping: dispatcher, providers, store")
        await pipeline.stop()
        await runtime.close()
        return
    assert listener is not None
    port = listener.getsockname()[1]
    pipeline.simulators.point_webhooks_at(f"http://127.0.0.1:{port}")
    webhooks = [route for provider in pipeline.providers.values() for route in provider.webhook_routes()]
    config = build_config(
        cast("ASGIApplication", create_app(settings, runtime, webhooks)),
        host=settings.host,
        port=port,
        max_request_target=settings.max_request_target_bytes,
        timeout_keep_alive=settings.keep_alive_seconds,
        log_level=settings.log_level.lower(),
    )
    server = InLoopServer(config)  # its signals are ours: the process stops its parts in order
    # What start-up built (modules, the schema, the app, the providers) lives as long as the
    # process. Left in the collector's generations, every full collection re-scanned it: about
    # 150,000 objects, 75-80 ms with the event loop stopped, once or twice per 10-second figure
    # (measured with gc.callbacks during the bench's look-ups). Frozen, a full collection scans
    # only what was made since: under 1 ms.
    gc.freeze()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    try:
        await server.serve(sockets=[listener])
    finally:
        logger.info("stopping: dispatcher, providers, store")
        await pipeline.stop()
        await runtime.close()
