"""What one gateway process runs, put together: the API, the dispatcher, the providers, and,
when no provider is configured, the built-in simulators they talk to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import uvicorn
from pydantic import SecretStr

from partner_gateway.api.app import create_app
from partner_gateway.api.server import build_config
from partner_gateway.channels.base import Provider
from partner_gateway.channels.smpp.provider import SmppProvider
from partner_gateway.config import Settings, SmppCarrier
from partner_gateway.dispatch.batching import WriteBatcher
from partner_gateway.dispatch.reports import ReportRecorder
from partner_gateway.dispatch.worker import Dispatcher
from partner_gateway.domain.statuses import Channel
from partner_gateway.runtime import Runtime
from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator

if TYPE_CHECKING:
    from uvicorn._types import ASGIApplication

logger = logging.getLogger(__name__)
SIMULATOR_SYSTEM_ID = "gateway"
SIMULATOR_PASSWORD = "sim-only"  # noqa: S105 - the embedded simulator's, on loopback only


@dataclass
class Simulators:
    smsc: SmscSimulator | None = None


@dataclass
class Pipeline:
    """The delivery side of a process: providers, the dispatcher and the writes they share."""

    batcher: WriteBatcher
    recorder: ReportRecorder
    dispatcher: Dispatcher
    providers: dict[Channel, Provider]
    simulators: Simulators = field(default_factory=Simulators)

    async def stop(self) -> None:
        await self.dispatcher.stop()
        for provider in self.providers.values():
            await provider.stop()
        await self.batcher.stop()
        if self.simulators.smsc is not None:
            await self.simulators.smsc.stop()


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
    return simulators


def build_providers(settings: Settings, simulators: Simulators) -> dict[Channel, Provider]:
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
        providers[Channel.SMS] = SmppProvider(carriers[0])
    return providers


async def start_pipeline(settings: Settings, runtime: Runtime) -> Pipeline:
    simulators = await start_simulators(settings)
    batcher = WriteBatcher(runtime.database)
    batcher.start()
    recorder = ReportRecorder(batcher)
    providers = build_providers(settings, simulators)
    for provider in providers.values():
        await provider.start(recorder)
    dispatcher = Dispatcher(settings, batcher, providers)
    await dispatcher.start()
    runtime.on_accepted = dispatcher.wake
    return Pipeline(batcher, recorder, dispatcher, providers, simulators)


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handling: the process stops its own parts in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings) -> None:
    """API and worker in one process: the embedded gateway (`partner-gateway serve`)."""
    runtime = await Runtime.start(settings)
    pipeline = await start_pipeline(settings, runtime)
    config = build_config(
        cast("ASGIApplication", create_app(settings, runtime)),
        host=settings.host,
        port=settings.port,
        max_request_target=settings.max_request_target_bytes,
        log_level=settings.log_level.lower(),
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    try:
        await server.serve()
    finally:
        logger.info("stopping: dispatcher, providers, store")
        await pipeline.stop()
        await runtime.close()
