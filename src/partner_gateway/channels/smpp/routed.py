"""SMS over several carriers: the route table picks the carriers, failover moves to the next.

One `SmppProvider` per carrier, each with its own binds, window, throughput and receipt settings
(and its own cluster-wide bind leases). This provider is what the dispatcher sees for the SMS
channel: for each message it asks `domain.routing.decide` for the carriers to try, in order,
and hands the message to the first. It moves on to the next carrier only when nothing of the
message was accepted and the carrier said so for sure:

* not bound, or not reachable (`retry` with nothing written, `NotConnected`),
* throttled (`ESME_RTHROTTLED`, `ESME_RMSGQFUL`), or paused past its `failover_throttle_seconds`,
* a temporary error class (`ESME_RSYSERR`, `ESME_RX_T_APPN`, a `generic_nack`).

A permanent refusal ends the message (another carrier would refuse the number too); an
unanswered submit (`ambiguous`) is never offered to a second carrier, which could deliver it
twice. A multipart message whose first parts one carrier accepted keeps that carrier: the parts
of one concatenated SMS must reach the handset through the same SMSC.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from partner_gateway.channels.base import (
    Accepted,
    HandoverGuard,
    OutboundMessage,
    ReportSink,
    SendError,
    WebhookRoute,
)
from partner_gateway.channels.smpp.provider import SmppProvider
from partner_gateway.domain.error_codes import NO_ROUTE
from partner_gateway.domain.routing import Health, RoutedMessage, RouteTable, decide
from partner_gateway.domain.statuses import Channel

logger = logging.getLogger(__name__)

FAILOVER_KINDS = frozenset({"retry", "throttled"})
PartsCarrier = Callable[[str], Awaitable[str | None]]
"""The provider name (`smpp:<carrier>`) that accepted a message's first parts, from the store."""
UpInCluster = Callable[[], Awaitable[set[str]]]
"""The carriers some worker of the cluster reported bound lately (the store's carrier_stats)."""


class RoutedSmsProvider:
    channel = Channel.SMS
    name = "smpp"

    def __init__(
        self,
        carriers: Sequence[SmppProvider],
        table: RouteTable,
        *,
        parts_carrier: PartsCarrier | None = None,
        up_in_cluster: UpInCluster | None = None,
        cluster_interval: float = 10.0,
    ) -> None:
        self.carriers: dict[str, SmppProvider] = {provider.carrier.name: provider for provider in carriers}
        self.table = table
        self._parts_carrier = parts_carrier
        self._up_in_cluster = up_in_cluster
        self._cluster_interval = cluster_interval
        self._up_elsewhere: set[str] | None = None  # None: not known (yet), held elsewhere counts as up
        self._cluster_task: asyncio.Task[None] | None = None

    def health(self) -> dict[str, Health]:
        """Each carrier's health on this worker. A carrier whose binds other workers hold, and that
        none of them reported bound lately, is down: otherwise two workers, each holding the bind
        the other's failover needs, would hand the same message back to each other."""
        health = {name: provider.health for name, provider in self.carriers.items()}
        up = self._up_elsewhere
        if up is not None:
            for name, state in health.items():
                if state is Health.ELSEWHERE and name not in up:
                    health[name] = Health.DOWN
        return health

    async def _watch_cluster(self) -> None:
        assert self._up_in_cluster is not None
        while True:
            try:
                async with asyncio.timeout(self._cluster_interval):
                    self._up_elsewhere = await self._up_in_cluster()
            except Exception as error:  # the store away: keep the last view, look again next round
                logger.debug("reading the carriers' health in the cluster failed: %r", error)
            await asyncio.sleep(self._cluster_interval)

    def webhook_routes(self) -> Sequence[WebhookRoute]:
        return ()

    async def start(self, sink: ReportSink) -> None:
        for provider in self.carriers.values():
            await provider.start(sink)
        if self._up_in_cluster is not None:
            self._cluster_task = asyncio.create_task(self._watch_cluster(), name="smpp-cluster-health")

    async def stop(self) -> None:
        if self._cluster_task is not None:
            self._cluster_task.cancel()
            await asyncio.gather(self._cluster_task, return_exceptions=True)
            self._cluster_task = None
        for provider in self.carriers.values():
            await provider.stop()

    @property
    def accepting(self) -> bool:
        """Any of the carriers can take work on this worker."""
        return any(provider.accepting for provider in self.carriers.values())

    async def wait_accepting(self, state: bool = True) -> None:
        """Return once :attr:`accepting` is `state`: one carrier accepting, or none."""
        while self.accepting is not state:
            # True: the first carrier to accept; False: each accepting one stops, then look again.
            watched = [p for p in self.carriers.values() if state or p.accepting]
            waiters = [asyncio.ensure_future(p.wait_accepting(state)) for p in watched]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)

    async def wait_bound(self, within: float) -> bool:
        """Every carrier's binds are bound within `within` seconds (tests, start-up)."""
        results = await asyncio.gather(*(p.wait_bound(within) for p in self.carriers.values()))
        return all(results)

    def carrier_for_receipts(self, message: OutboundMessage) -> str:
        """The provider name whose receipt an unanswered hand-over of `message` most likely gets:
        its route's first carrier as things stand (a crash left no record of which was tried)."""
        order = decide(_routed(message), self.table, self.health())
        return self.carriers[order[0]].name if order else self.name

    async def _order(self, message: OutboundMessage, health: dict[str, Health]) -> list[str]:
        if message.parts_done > 0 and self._parts_carrier is not None:
            taken = await self._parts_carrier(message.message_id)
            name = taken.removeprefix("smpp:") if taken is not None else None
            if name is not None and name in self.carriers:
                return [name]  # the rest of a concatenated SMS goes where its first parts went
        return decide(_routed(message), self.table, health)

    async def send(self, message: OutboundMessage, guard: HandoverGuard) -> Accepted:
        health = self.health()
        order = await self._order(message, health)
        if not order:
            raise SendError(
                "permanent", "No SMS route matches the destination", code=NO_ROUTE.code, provider=self.name
            )
        refusals: list[str] = []
        for position, name in enumerate(order):
            provider = self.carriers[name]
            held_elsewhere = health[name] is Health.ELSEWHERE  # that worker sends it: hand it back
            try:
                accepted = await provider.send(message, guard)
            except SendError as error:
                refusals.append(f"{name}: {error.description}")
                last = position == len(order) - 1
                if error.kind not in FAILOVER_KINDS or error.accepted_parts or held_elsewhere or last:
                    raise _with_refusals(error, refusals) from None
                logger.info(
                    "carrier %s refused %s (%s); failing over to %s",
                    *(name, message.message_id, error.description, order[position + 1]),
                )
                continue
            description = f"Accepted by the carrier {name}"
            if refusals:
                description += f" (after {'; '.join(refusals)})"
            return Accepted(accepted.provider, accepted.parts, description[:300], accepted.raw_state)
        raise AssertionError("unreachable: the last carrier's refusal is raised")


def _routed(message: OutboundMessage) -> RoutedMessage:
    return RoutedMessage(message.message_id, message.company_id, message.to, message.sender)


def _with_refusals(error: SendError, refusals: list[str]) -> SendError:
    """The last carrier's error, its description naming every carrier that refused (the timeline)."""
    return SendError(
        error.kind,
        "; ".join(refusals)[:300],
        code=error.code,
        retry_after=error.retry_after,
        provider=error.provider,
        accepted_parts=error.accepted_parts,
        channel_unavailable=error.channel_unavailable,
    )
