"""What one gateway process runs, put together: the API, the dispatcher, the providers, and,
when no provider is configured, the built-in simulators they talk to."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import TYPE_CHECKING, cast

from partner_gateway.api.app import create_app
from partner_gateway.api.granian_server import GRANIAN_MAX_TARGET, GranianServer
from partner_gateway.api.operations import operations_app
from partner_gateway.api.rate_limits.sync import rate_limit_sync
from partner_gateway.api.server import PartnerServer, build_config
from partner_gateway.callbacks.sender import CallbackSender
from partner_gateway.channels.base import Provider
from partner_gateway.channels.entry import ProviderContext, Simulation
from partner_gateway.channels.registry import CHANNELS, ChannelRegistry
from partner_gateway.config import Settings
from partner_gateway.dispatch.queues.base import WorkQueueError
from partner_gateway.dispatch.queues.rabbitmq import RabbitWorkQueue
from partner_gateway.dispatch.reports import ReportRecorder
from partner_gateway.dispatch.worker import Dispatcher
from partner_gateway.domain.inbound import OptKeywords
from partner_gateway.domain.statuses import Channel
from partner_gateway.embedded_server import EmbeddedServer
from partner_gateway.observability.metrics import BROKER_UP, BUILD_INFO
from partner_gateway.observability.scrape import Source
from partner_gateway.readiness import Check
from partner_gateway.runtime import Runtime
from partner_gateway.sender_process import SenderProcess
from partner_gateway.shutdown import Shutdown, drain_http
from partner_gateway.startup import listen_error
from partner_gateway.store.batching import WriteBatcher

if TYPE_CHECKING:
    from uvicorn._types import ASGIApplication

    from partner_gateway.api.granian_server import App

logger = logging.getLogger(__name__)

STOP_SECONDS = 10.0  # a pipeline stopped other than by a signal (tests): the longest it takes


@dataclass
class Simulators:
    """The built-in simulators started for the channels that are not configured."""

    running: dict[Channel, Simulation] = field(default_factory=dict)

    def point_webhooks_at(self, gateway_url: str) -> None:
        """The simulators call the gateway back, as Meta and Google would."""
        for simulation in self.running.values():
            simulation.point_webhooks_at(gateway_url)

    async def stop(self) -> None:
        for simulation in self.running.values():
            await simulation.stop()


@dataclass
class Pipeline:
    """The delivery side of a process: providers, the dispatcher and the writes they share."""

    batcher: WriteBatcher
    recorder: ReportRecorder
    dispatcher: Dispatcher
    providers: dict[Channel, Provider]
    simulators: Simulators = field(default_factory=Simulators)
    queue: RabbitWorkQueue | None = None
    callbacks: CallbackSender | SenderProcess | None = None

    async def stop(self, shutdown: Shutdown | None = None) -> None:
        """Drain the delivery side in order, each step bounded (shutdown.py)."""
        if shutdown is None:
            shutdown = Shutdown(0, STOP_SECONDS)
            shutdown.begin("stopping")
        if self.callbacks is not None:  # apart from the pipeline: stopped first, its claims kept
            await shutdown.step("the callback sender", self.callbacks.stop())
        await shutdown.step(
            "the dispatcher", self.dispatcher.stop(shutdown.for_handovers(), shutdown.hurried)
        )
        if self.queue is not None:
            await shutdown.step("the work queue", self.queue.close())
        for provider in self.providers.values():
            await shutdown.step(f"provider {provider.name}", provider.stop())  # SMPP: unbind
        await shutdown.step("the last writes", self.batcher.stop())
        await shutdown.step("the simulators", self.simulators.stop())


async def start_simulators(settings: Settings, channels: ChannelRegistry) -> Simulators:
    """A simulator for each channel that is not configured (and has one)."""
    simulators = Simulators()
    try:
        for entry in channels:
            simulation = await entry.simulate(settings) if entry.simulate is not None else None
            if simulation is not None:
                simulators.running[entry.channel] = simulation
    except BaseException:
        await simulators.stop()
        raise
    return simulators


def build_providers(
    settings: Settings,
    simulators: Simulators,
    channels: ChannelRegistry,
    runtime: Runtime | None = None,
    *,
    exclusive: bool = False,
) -> dict[Channel, Provider]:
    """Each channel's provider, from its settings or its simulator's; a channel that has
    neither has no provider (its messages end in ERROR, NO_PROVIDER)."""
    providers: dict[Channel, Provider] = {}
    for entry in channels:
        simulation = simulators.running.get(entry.channel)
        simulated = simulation.provider_settings if simulation is not None else None
        provider = entry.build_provider(ProviderContext(settings, simulated, runtime, exclusive))
        if provider is not None:
            providers[entry.channel] = provider
    return providers


async def start_pipeline(settings: Settings, runtime: Runtime) -> Pipeline:
    """The delivery side. In the embedded gateway (role "all", no broker) this process is the
    only worker and starts simulators for what is not configured; in a cluster it is one of
    many, and every provider must be configured."""
    embedded = settings.role == "all" and settings.amqp_url is None
    channels = runtime.channels
    simulators = await start_simulators(settings, channels) if embedded else Simulators()
    batcher = runtime.writes  # the API's sends share the group commits
    batcher.start()
    keywords = OptKeywords.of(settings.inbound_opt_out_keywords, settings.inbound_opt_in_keywords)
    recorder = ReportRecorder(batcher, keywords)
    providers = build_providers(settings, simulators, channels, runtime, exclusive=embedded)
    if settings.role == "api":
        # An API process serves the providers' webhooks; it opens no carrier connection.
        providers = {channel: p for channel, p in providers.items() if p.webhook_routes()}
    for provider in providers.values():
        await provider.start(recorder)
    queue = None
    if settings.amqp_url is not None:
        queue = RabbitWorkQueue(settings.amqp_url.get_secret_value(), channels=channels.names)
    dispatcher = Dispatcher(
        settings, batcher, providers if settings.role != "api" else {}, exclusive=embedded, queue=queue
    )
    if settings.role != "api":
        if queue is not None:
            runtime.readiness.add("broker", _broker_check(queue))
            runtime.scrape.add("queue", queue.read_depths)
            runtime.broker_up = lambda: queue.connected
            runtime.scrape.add("broker", _broker_gauge(queue))
        await dispatcher.start()
        runtime.on_accepted = dispatcher.wake
    callbacks: CallbackSender | SenderProcess | None = None
    if settings.role != "api":  # status callbacks go out from the processes that deliver
        if settings.callback_sender == "process":  # on another core (sender_process.py)
            callbacks = SenderProcess(settings, runtime.database, exclusive=embedded)
        else:
            callbacks = CallbackSender(
                settings,
                runtime.database,
                batcher,
                runtime.callback_urls,
                runtime.callback_secrets,
                exclusive=embedded,
            )
    pipeline = Pipeline(batcher, recorder, dispatcher, providers, simulators, queue)
    if callbacks is not None:
        try:
            await callbacks.start()
        except BaseException:  # a sender process that cannot start: nothing of the pipeline left running
            await pipeline.stop()
            raise
        pipeline.callbacks = callbacks
    return pipeline


async def _start(settings: Settings, channels: ChannelRegistry) -> tuple[Runtime, Pipeline]:
    runtime = await Runtime.start(settings, channels)
    try:
        return runtime, await start_pipeline(settings, runtime)
    except BaseException:
        await runtime.close()
        raise


def _broker_gauge(queue: RabbitWorkQueue) -> Source:
    """partner_gateway_broker_up, read when scraped: the connection as it is, never a reconnect."""

    async def read() -> None:
        BROKER_UP.set(1 if queue.connected else 0)

    return read


def _broker_check(queue: RabbitWorkQueue) -> Check:
    """The worker's broker: connected (a worker connects when it first has work; the check
    connects it if it has not yet)."""

    async def check() -> str | None:
        try:
            await queue.start()
        except WorkQueueError as error:  # its message names the broker without the password
            return str(error)
        return None if queue.connected else "not connected to RabbitMQ (reconnecting)"

    return check


def _url(host: str, port: int | None) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(settings: Settings, channels: ChannelRegistry = CHANNELS) -> None:
    """Run this process's role: API and worker together (the embedded gateway), or one of them,
    until SIGTERM or SIGINT, then drain (shutdown.py)."""
    shutdown = Shutdown.from_settings(settings)
    shutdown.install()
    # The API's port is taken first: a port in use fails at once, and no simulator started
    # below can be handed the same port by the kernel.
    listener = None if settings.role == "worker" else socket.create_server((settings.host, settings.port))
    BUILD_INFO.labels(version("partner-gateway"), settings.role).set(1)
    starting = asyncio.ensure_future(_start(settings, channels))
    if not await shutdown.first(starting):  # signalled while starting: nothing to drain yet
        logger.info("%s while starting: stopping", shutdown.reason)
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        if listener is not None:
            listener.close()
        return
    runtime, pipeline = starting.result()
    if settings.role == "worker":
        operations = None
        if settings.ops_port is not None:  # /health and /ready for the orchestrator's probes
            operations = EmbeddedServer(
                operations_app(runtime), host=settings.host, port=settings.ops_port, name="operations server"
            )
            try:
                await operations.start()
            except OSError as error:
                await pipeline.stop()
                await runtime.close()
                raise listen_error(error, settings.host, settings.ops_port, "OPS_PORT") from None
            logger.info(
                "operations (/health, /ready, /metrics) on %s", _url(settings.host, operations.bound_port)
            )
        gc.freeze()  # as for the API below
        await shutdown.requested.wait()
        runtime.readiness.stopping(f"the process is shutting down ({shutdown.reason})")
        await pipeline.stop(shutdown)
        await shutdown.step("the store", runtime.close())
        if operations is not None:  # last: the probes see the drain
            await shutdown.step("the operations server", operations.stop())
        return
    assert listener is not None
    limits = rate_limit_sync(settings, runtime)
    await limits.start()  # the companies' own limits apply from the first request
    port = listener.getsockname()[1]
    logger.info(
        "partner API listening on %s (role %s, %s)",
        _url(settings.host, port),
        settings.role,
        settings.http_server,
    )
    pipeline.simulators.point_webhooks_at(f"http://127.0.0.1:{port}")
    webhooks = [route for provider in pipeline.providers.values() for route in provider.webhook_routes()]
    app = create_app(settings, runtime, webhooks)
    server: PartnerServer | GranianServer
    if settings.http_server == "granian":
        limit = min(settings.max_request_target_bytes, GRANIAN_MAX_TARGET)
        if limit < settings.max_request_target_bytes:
            logger.info("granian serves request targets up to %d bytes (the setting says %d)",
                        limit, settings.max_request_target_bytes)  # fmt: skip
        server = GranianServer(
            cast("App", app),
            listener,  # granian owns it from here, and closes it when it stops accepting
            max_request_target=limit,
            keep_alive_seconds=settings.keep_alive_seconds,
            log_level=settings.log_level,
        )
    else:
        config = build_config(
            cast("ASGIApplication", app),
            host=settings.host,
            port=port,
            max_request_target=settings.max_request_target_bytes,
            timeout_keep_alive=settings.keep_alive_seconds,
            log_level=settings.log_level.lower(),
            log_config=None,  # uvicorn's lines go through the process's format (observability/logs.py)
        )
        server = PartnerServer(config)  # its signals are ours: the process stops its parts in order
    # What start-up built (modules, the schema, the app, the providers) lives as long as the
    # process. Left in the collector's generations, every full collection re-scanned it: about
    # 150,000 objects, 75-80 ms with the event loop stopped, once or twice per 10-second figure
    # (measured with gc.callbacks during the bench's look-ups). Frozen, a full collection scans
    # only what was made since: under 1 ms.
    gc.freeze()
    serving = asyncio.create_task(
        server.serve() if isinstance(server, GranianServer) else server.serve(sockets=[listener]),
        name="http",
    )
    try:
        await drain_http(server, serving, shutdown, runtime.readiness)
    finally:
        logger.info("stopping: dispatcher, providers, store")
        await shutdown.step("the rate limits' sync", limits.stop())
        await pipeline.stop(shutdown)
        await shutdown.step("the store", runtime.close())
    if serving.done() and not serving.cancelled() and serving.exception() is not None:
        raise serving.exception()  # type: ignore[misc]
